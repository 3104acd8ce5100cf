#pragma once
// peer_watch: the leading replica's view of how far behind each peer is, in time, and the two
// alerts that view raises (DESIGN.md §5, §7).
//
// Raft only needs a majority, so a leader keeps committing while one peer falls behind: cut
// prod<->dr-local and prod commits through dr-remote, slower, with nothing lost. But the site
// that fell behind is the one a later failover may need, and the RPO target (15 s) is about
// time, so the lag is measured as time: a peer's lag is how long ago the leader appended the
// oldest entry the peer has not acknowledged (PostgreSQL's replay_lag idea). Entry counts say
// little: 100 entries are 50 ms under load and an hour when idle.
//
// Alerts, judged only while leading (only the leader sees match indexes):
// - journal_peer_lagging: lag above lag_alert_ms; resolves below half of it (no flapping at
//   the threshold).
// - journal_peer_silent: nothing heard from the peer (no Raft frame arrived) for
//   silence_alert_ms; resolves when a frame arrives. It fires on an idle cluster too, where
//   the lag stays 0 because nothing new was written.
// Standing down (leadership lost) resolves every alert: the next leader judges afresh.
//
// Pure logic: time comes in as milliseconds on a monotonic clock, so tests drive it.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace bastion::actors {

struct peer_watch_settings {
  std::int64_t lag_alert_ms = 5000;
  std::int64_t silence_alert_ms = 3000;
  /// Bound on the (index, time) samples kept; when reached, the spacing doubles and close
  /// samples merge, so times grow coarser but stay on the high side and the oldest is kept
  /// (a long-cut peer's lag stays measured).
  std::size_t samples_max = 4096;
  /// Appends closer together than this share one sample: a lag reads at most this much high
  /// (more after thinning: at most the doubled spacing).
  std::int64_t sample_spacing_ms = 10;
};

struct peer_reading {
  std::uint64_t peer = 0;
  std::uint64_t match_index = 0;
  std::int64_t lag_ms = 0;
  std::int64_t silence_ms = 0;
  bool lagging = false;  // journal_peer_lagging is firing
  bool silent = false;   // journal_peer_silent is firing
};

/// One alert starting or ending.
struct alert_change {
  const char* alert = "";  // journal_peer_lagging | journal_peer_silent
  std::uint64_t peer = 0;
  bool firing = false;
  std::int64_t value_ms = 0;  // the lag or silence that crossed the threshold
};

inline constexpr const char* alert_peer_lagging = "journal_peer_lagging";
inline constexpr const char* alert_peer_silent = "journal_peer_silent";

class peer_watch {
 public:
  explicit peer_watch(peer_watch_settings settings);

  /// This replica became leader with `last_index` entries in its log: entries already there
  /// count as appended now (their real age is unknown here; the lag reads low, never high).
  void lead(std::uint64_t last_index, std::int64_t now_ms);

  /// While leading: the log now ends at `last_index`. Cheap; call after every change.
  void appended(std::uint64_t last_index, std::int64_t now_ms);

  /// A Raft frame from `peer` arrived (any kind: its answers are what proves it is alive).
  void heard_from(std::uint64_t peer, std::int64_t now_ms);

  /// While leading: each peer's acknowledged index; updates readings() and returns the
  /// alerts that started or ended.
  std::vector<alert_change> evaluate(const std::map<std::uint64_t, std::uint64_t>& peer_match,
                                     std::uint64_t last_index, std::int64_t now_ms);

  /// Leadership lost: every firing alert ends (returned), readings and samples are dropped.
  std::vector<alert_change> stand_down();

  bool leading() const { return leading_; }
  const std::vector<peer_reading>& readings() const { return readings_; }
  /// The latest reading of `peer`; null when it has none (not leading, not evaluated yet).
  const peer_reading* reading_of(std::uint64_t peer) const;
  /// The alerts firing now, one describe() line each, in peer order.
  std::vector<std::string> firing() const;
  std::size_t samples() const { return samples_.size(); }

  /// "journal_peer_lagging peer 2: 7.1 s behind (alert above 5 s)", for status and logs.
  static std::string describe(const alert_change& c, const peer_watch_settings& s);

 private:
  struct sample {
    std::uint64_t index;  // the log ended here...
    std::int64_t at_ms;   // ...by this time
  };

  std::int64_t appended_at(std::uint64_t index) const;  // when entry `index` was in the log
  void thin_samples();

  peer_watch_settings settings_;
  bool leading_ = false;
  std::int64_t leading_since_ms_ = 0;
  std::int64_t spacing_ms_ = 0;  // settings_.sample_spacing_ms, doubled by each thinning
  std::deque<sample> samples_;
  std::map<std::uint64_t, std::int64_t> heard_ms_;
  std::vector<peer_reading> readings_;
};

}  // namespace bastion::actors
