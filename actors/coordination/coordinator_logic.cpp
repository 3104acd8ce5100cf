#include "actors/coordination/coordinator_logic.hpp"

namespace bastion::coordination {

std::optional<site_rank> parse_site(const std::string& s) noexcept {
  if (s == "prod") return site_rank::prod;
  if (s == "dr-local") return site_rank::dr_local;
  if (s == "dr-remote") return site_rank::dr_remote;
  return std::nullopt;
}

const char* to_string(site_rank s) noexcept {
  switch (s) {
    case site_rank::prod:
      return "prod";
    case site_rank::dr_local:
      return "dr-local";
    case site_rank::dr_remote:
      return "dr-remote";
  }
  return "unknown";
}

const char* to_string(coordinator_phase p) noexcept {
  switch (p) {
    case coordinator_phase::follower:
      return "follower";
    case coordinator_phase::committing_epoch:
      return "committing_epoch";
    case coordinator_phase::applying_config:
      return "applying_config";
    case coordinator_phase::checking_models:
      return "checking_models";
    case coordinator_phase::running_canaries:
      return "running_canaries";
    case coordinator_phase::ready:
      return "ready";
  }
  return "unknown";
}

const char* to_string(action_kind k) noexcept {
  switch (k) {
    case action_kind::propose_epoch_start:
      return "propose_epoch_start";
    case action_kind::apply_config:
      return "apply_config";
    case action_kind::check_models:
      return "check_models";
    case action_kind::run_canaries:
      return "run_canaries";
    case action_kind::open_gate:
      return "open_gate";
    case action_kind::close_gate:
      return "close_gate";
    case action_kind::drain_and_transfer:
      return "drain_and_transfer";
  }
  return "unknown";
}

namespace {

/// The action that starts phase `p`, or nothing for phases that start none.
std::optional<action_kind> action_of(coordinator_phase p) {
  switch (p) {
    case coordinator_phase::committing_epoch:
      return action_kind::propose_epoch_start;
    case coordinator_phase::applying_config:
      return action_kind::apply_config;
    case coordinator_phase::checking_models:
      return action_kind::check_models;
    case coordinator_phase::running_canaries:
      return action_kind::run_canaries;
    case coordinator_phase::ready:
      return action_kind::open_gate;  // see enter()
    case coordinator_phase::follower:
      return std::nullopt;
  }
  return std::nullopt;
}

/// The phase whose action reports `step`.
std::optional<coordinator_phase> phase_of(action_kind step) {
  switch (step) {
    case action_kind::propose_epoch_start:
      return coordinator_phase::committing_epoch;
    case action_kind::apply_config:
      return coordinator_phase::applying_config;
    case action_kind::check_models:
      return coordinator_phase::checking_models;
    case action_kind::run_canaries:
      return coordinator_phase::running_canaries;
    default:
      return std::nullopt;
  }
}

coordinator_phase next_of(coordinator_phase p) {
  switch (p) {
    case coordinator_phase::committing_epoch:
      return coordinator_phase::applying_config;
    case coordinator_phase::applying_config:
      return coordinator_phase::checking_models;
    case coordinator_phase::checking_models:
      return coordinator_phase::running_canaries;
    default:
      return coordinator_phase::ready;
  }
}

}  // namespace

coordinator_logic::coordinator_logic(coordinator_settings s) : settings_(s) {}

std::vector<coordinator_action> coordinator_logic::enter(coordinator_phase p) {
  phase_ = p;
  retry_at_.reset();
  if (p == coordinator_phase::ready) opened_epoch_ = term_;
  std::vector<coordinator_action> out;
  if (auto a = action_of(p)) out.push_back({*a, term_, 0, {}, to_string(p)});
  return out;
}

std::vector<coordinator_action> coordinator_logic::step_away(const std::string& why) {
  const bool was_leading = phase_ != coordinator_phase::follower;
  phase_ = coordinator_phase::follower;
  retry_at_.reset();
  transfer_since_.reset();
  failures_ = 0;
  if (!was_leading) return {};
  return {{action_kind::close_gate, term_, 0, leader_address_, why}};
}

std::vector<coordinator_action> coordinator_logic::on_role(bool leader, std::uint64_t term,
                                                           std::uint64_t leader_id,
                                                           const std::string& leader_address) {
  if (term < term_) return {};  // a stale report
  if (!leader) {
    const bool moved = leader_address != leader_address_;
    leader_address_ = leader_id != 0 ? leader_address : std::string{};
    auto out = step_away("not the leader in term " + std::to_string(term));
    term_ = term;
    // Already a follower: only a new leader address is news (the gate redirects there).
    if (out.empty() && moved && !leader_address_.empty())
      out.push_back({action_kind::close_gate, term_, 0, leader_address_, "leader moved"});
    return out;
  }
  if (phase_ != coordinator_phase::follower && term == term_) return {};  // no change
  // Raft never elects a server twice in one term; a report that says so must not reopen an
  // epoch whose gate was already opened (and closed): epochs only grow.
  if (term <= opened_epoch_) return {};
  std::vector<coordinator_action> out;
  if (phase_ != coordinator_phase::follower)  // leader again in a newer term: a new epoch
    out = step_away("new term " + std::to_string(term));
  term_ = term;
  leader_address_.clear();
  failures_ = 0;
  last_failure_.clear();
  auto started = enter(coordinator_phase::committing_epoch);
  out.insert(out.end(), started.begin(), started.end());
  return out;
}

std::vector<coordinator_action> coordinator_logic::on_epoch_committed(std::uint64_t epoch,
                                                                      time_point now) {
  return on_step_result(action_kind::propose_epoch_start, epoch, true, {}, now);
}

std::vector<coordinator_action> coordinator_logic::on_step_result(action_kind step,
                                                                  std::uint64_t epoch, bool ok,
                                                                  const std::string& why,
                                                                  time_point now) {
  const auto phase = phase_of(step);
  if (!phase || *phase != phase_ || epoch != term_) return {};  // stale or out of order
  if (ok) {
    failures_ = 0;
    return enter(next_of(phase_));
  }
  ++failures_;
  last_failure_ = std::string{to_string(step)} + " failed: " + why;
  if (failures_ >= settings_.attempts_max && !transfer_since_) {
    if (auto target = best_peer(false, now)) {
      transfer_since_ = now;
      return {{action_kind::drain_and_transfer,
               term_,
               *target,
               {},
               "cannot serve after " + std::to_string(failures_) + " attempts: " + last_failure_}};
    }
  }
  retry_at_ = now + settings_.retry_after;
  return {};
}

std::vector<coordinator_action> coordinator_logic::on_peer_progress(std::uint64_t peer_id,
                                                                    site_rank rank, bool caught_up,
                                                                    time_point now) {
  auto& p = peers_[peer_id];
  p.rank = rank;
  if (caught_up && !p.caught_up) p.since = now;
  p.caught_up = caught_up;
  return on_tick(now);
}

std::vector<coordinator_action> coordinator_logic::on_preference(std::optional<site_rank> site,
                                                                 time_point now) {
  preferred_ = site;
  // A handover begun under the old order may aim at the wrong site: let the new order decide.
  if (phase_ == coordinator_phase::ready) transfer_since_.reset();
  return on_tick(now);
}

int coordinator_logic::order_of(site_rank r) const noexcept {
  return preferred_ && r == *preferred_ ? -1 : static_cast<int>(r);
}

std::vector<coordinator_action> coordinator_logic::on_tick(time_point now) {
  if (phase_ == coordinator_phase::follower) return {};
  // A handover that did not happen (the target fell behind or died): allow another later.
  if (transfer_since_ && now - *transfer_since_ > 10 * settings_.retry_after)
    transfer_since_.reset();
  if (retry_at_ && now >= *retry_at_) {
    retry_at_.reset();
    if (auto a = action_of(phase_)) return {{*a, term_, 0, {}, "retry: " + last_failure_}};
  }
  if (phase_ == coordinator_phase::ready && !transfer_since_) {
    if (auto target = best_peer(true, now)) {
      transfer_since_ = now;
      return {{action_kind::drain_and_transfer,
               term_,
               *target,
               {},
               "handing leadership to a more preferred site that has caught up"}};
    }
  }
  return {};
}

std::optional<std::uint64_t> coordinator_logic::best_peer(bool more_preferred_only,
                                                          time_point now) const {
  std::optional<std::uint64_t> best;
  int best_order = 0;
  for (const auto& [id, p] : peers_) {
    if (!p.caught_up || id == settings_.self_id) continue;
    if (more_preferred_only &&
        (order_of(p.rank) >= order_of(settings_.self) || now - p.since < settings_.preferred_hold))
      continue;
    if (!best || order_of(p.rank) < best_order) {
      best = id;
      best_order = order_of(p.rank);
    }
  }
  return best;
}

}  // namespace bastion::coordination
