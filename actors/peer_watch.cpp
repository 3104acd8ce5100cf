#include "actors/peer_watch.hpp"

#include <algorithm>
#include <cstdio>

namespace bastion::actors {

peer_watch::peer_watch(peer_watch_settings settings) : settings_(settings) {}

void peer_watch::lead(std::uint64_t last_index, std::int64_t now_ms) {
  leading_ = true;
  leading_since_ms_ = now_ms;
  samples_.clear();
  readings_.clear();
  spacing_ms_ = settings_.sample_spacing_ms;
  samples_.push_back({last_index, now_ms});
}

void peer_watch::appended(std::uint64_t last_index, std::int64_t now_ms) {
  if (!leading_) return;
  if (!samples_.empty()) {
    auto& back = samples_.back();
    if (last_index <= back.index) return;
    if (now_ms - back.at_ms < spacing_ms_) {
      // Entries after back.index are dated back.at_ms, up to the spacing early: the lag of a
      // peer missing them reads high by at most that, never low (a missed sample would).
      back.index = last_index;
      return;
    }
  }
  samples_.push_back({last_index, now_ms});
  if (samples_.size() > settings_.samples_max) thin_samples();
}

void peer_watch::thin_samples() {
  // Double the spacing and merge every sample closer than that to the one kept before it
  // (which then covers its entries, dated earlier): the error stays uniform in time, at most
  // the spacing and always on the high side, and the oldest time is kept exactly. Halving by
  // position instead would leave the oldest entries, the ones a long-cut peer lacks, dated
  // far too late.
  while (samples_.size() > settings_.samples_max / 2 + 1) {
    spacing_ms_ = std::max<std::int64_t>(1, spacing_ms_ * 2);
    std::deque<sample> kept;
    for (const auto& s : samples_) {
      if (!kept.empty() && s.at_ms - kept.back().at_ms < spacing_ms_)
        kept.back().index = s.index;
      else
        kept.push_back(s);
    }
    samples_.swap(kept);
  }
}

void peer_watch::heard_from(std::uint64_t peer, std::int64_t now_ms) {
  auto& at = heard_ms_[peer];
  at = std::max(at, now_ms);
}

std::int64_t peer_watch::appended_at(std::uint64_t index) const {
  // The first sample whose log end reaches `index`: the entry was there by its time.
  auto it = std::lower_bound(samples_.begin(), samples_.end(), index,
                             [](const sample& s, std::uint64_t i) { return s.index < i; });
  if (it == samples_.end()) return samples_.empty() ? leading_since_ms_ : samples_.back().at_ms;
  return it->at_ms;
}

std::vector<alert_change> peer_watch::evaluate(
    const std::map<std::uint64_t, std::uint64_t>& peer_match, std::uint64_t last_index,
    std::int64_t now_ms) {
  std::vector<alert_change> changes;
  if (!leading_) return changes;
  appended(last_index, now_ms);
  std::vector<peer_reading> next;
  std::uint64_t min_match = last_index;
  for (const auto& [peer, match] : peer_match) {
    peer_reading r;
    r.peer = peer;
    r.match_index = match;
    min_match = std::min(min_match, match);
    r.lag_ms = match >= last_index ? 0 : std::max<std::int64_t>(0, now_ms - appended_at(match + 1));
    // A peer not heard from since before this leadership gets the whole leadership as grace.
    auto heard = heard_ms_.find(peer);
    const auto since = std::max(leading_since_ms_, heard == heard_ms_.end() ? 0 : heard->second);
    r.silence_ms = std::max<std::int64_t>(0, now_ms - since);
    const auto* before = reading_of(peer);
    const bool was_lagging = before != nullptr && before->lagging;
    const bool was_silent = before != nullptr && before->silent;
    r.lagging =
        was_lagging ? r.lag_ms * 2 > settings_.lag_alert_ms : r.lag_ms > settings_.lag_alert_ms;
    r.silent = r.silence_ms > settings_.silence_alert_ms;
    if (r.lagging != was_lagging)
      changes.push_back({alert_peer_lagging, peer, r.lagging, r.lag_ms});
    if (r.silent != was_silent)
      changes.push_back({alert_peer_silent, peer, r.silent, r.silence_ms});
    next.push_back(r);
  }
  // Peers that left the configuration end their alerts.
  for (const auto& old : readings_) {
    if (peer_match.count(old.peer) != 0) continue;
    if (old.lagging) changes.push_back({alert_peer_lagging, old.peer, false, 0});
    if (old.silent) changes.push_back({alert_peer_silent, old.peer, false, 0});
  }
  readings_ = std::move(next);
  // Every peer holds entries up to min_match: their times are no longer needed. Keep one
  // sample at or below it so the next entry's time stays known.
  while (samples_.size() > 1 && samples_[1].index <= min_match) samples_.pop_front();
  if (samples_.size() <= 2) spacing_ms_ = settings_.sample_spacing_ms;  // caught up: fine again
  return changes;
}

std::vector<alert_change> peer_watch::stand_down() {
  std::vector<alert_change> changes;
  for (const auto& r : readings_) {
    if (r.lagging) changes.push_back({alert_peer_lagging, r.peer, false, r.lag_ms});
    if (r.silent) changes.push_back({alert_peer_silent, r.peer, false, r.silence_ms});
  }
  leading_ = false;
  readings_.clear();
  samples_.clear();
  return changes;
}

const peer_reading* peer_watch::reading_of(std::uint64_t peer) const {
  for (const auto& r : readings_)
    if (r.peer == peer) return &r;
  return nullptr;
}

std::vector<std::string> peer_watch::firing() const {
  std::vector<std::string> out;
  for (const auto& r : readings_) {
    if (r.lagging) out.push_back(describe({alert_peer_lagging, r.peer, true, r.lag_ms}, settings_));
    if (r.silent)
      out.push_back(describe({alert_peer_silent, r.peer, true, r.silence_ms}, settings_));
  }
  return out;
}

std::string peer_watch::describe(const alert_change& c, const peer_watch_settings& s) {
  const bool lag = std::string{c.alert} == alert_peer_lagging;
  const double value_s = static_cast<double>(c.value_ms) / 1000.0;
  const double limit_s = static_cast<double>(lag ? s.lag_alert_ms : s.silence_alert_ms) / 1000.0;
  char buf[200];
  if (!c.firing)
    std::snprintf(buf, sizeof buf, "%s peer %llu: resolved", c.alert,
                  static_cast<unsigned long long>(c.peer));
  else if (lag)
    std::snprintf(buf, sizeof buf, "%s peer %llu: %.1f s behind (alert above %.1f s)", c.alert,
                  static_cast<unsigned long long>(c.peer), value_s, limit_s);
  else
    std::snprintf(buf, sizeof buf, "%s peer %llu: not heard from for %.1f s (alert above %.1f s)",
                  c.alert, static_cast<unsigned long long>(c.peer), value_s, limit_s);
  return buf;
}

}  // namespace bastion::actors
