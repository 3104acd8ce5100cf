#pragma once
// link_faults: the inter-site transport fault switch (issue 7). The replicator is the only
// traffic between sites, so faults are injected where its Raft frames leave and arrive: per
// peer link, frames can be lost (drop_ratio), held back (delay_ms: the 50 ms remote link on a
// kernel without netem), or cut in one direction. The test scripts and the CLI drive it
// through the node's admin endpoint; the replicator reads it for every frame.
//
// Semantics, as the replicator applies them (replicator.cpp):
// - cut_outgoing: every frame to that peer is lost (the replica believes it sent it, as with a
//   real network fault; libraft is not told).
// - drop_ratio: each frame to that peer is lost with this probability, drawn from an RNG
//   seeded by replicator_config::rng_seed (deterministic in tests). 1.0 is the same as a cut.
// - delay_ms: each frame to that peer is delivered this much later (one way: set it on both
//   ends for a round trip of twice the value). Frames of one link keep their order even when
//   the delay changes while frames are in flight (link_delay_order below).
// - cut_incoming: every frame from that peer is dropped on arrival and counted.
//
// Thread-safe: one mutex; shared between the replicator actor and the admin endpoint.

#include <caf/error.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bastion::actors {

struct link_fault {
  bool cut_outgoing = false;
  bool cut_incoming = false;
  double drop_ratio = 0;  // in [0, 1]
  unsigned delay_ms = 0;  // at most link_faults::delay_ms_max

  /// True when this setting changes nothing.
  bool is_default() const noexcept {
    return !cut_outgoing && !cut_incoming && drop_ratio == 0 && delay_ms == 0;
  }
  /// "cut_outgoing cut_incoming drop_ratio=0.25 delay_ms=50", or "none", for people.
  std::string describe() const;
};

bool operator==(const link_fault& a, const link_fault& b) noexcept;
inline bool operator!=(const link_fault& a, const link_fault& b) noexcept { return !(a == b); }

class link_faults {
 public:
  /// A delay longer than this is refused: Raft's election timeout is about 1 s, so a minute
  /// is already far past anything but a cut, and a bound keeps delayed frames from piling up.
  static constexpr unsigned delay_ms_max = 60000;

  /// Replaces the setting for `peer_id`. Refuses (replicator_errc::bad_link_fault, naming the
  /// field and the value) a drop_ratio outside [0, 1] (NaN included), a delay_ms over
  /// delay_ms_max, and peer id 0; the old setting stays then. A default setting clears.
  caf::error set(std::uint64_t peer_id, link_fault f);
  void clear(std::uint64_t peer_id);
  void clear_all();
  /// The setting for `peer_id`; the default (no fault) when unset.
  link_fault get(std::uint64_t peer_id) const;
  /// The peers with a fault set, by id.
  std::vector<std::pair<std::uint64_t, link_fault>> all() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::uint64_t, link_fault> faults_;  // never holds a default setting
};

/// Keeps the frames of each link in order while their delay changes. A frame sent with a
/// shorter delay than a frame still in flight on the same link would overtake it; instead it
/// is held until that frame's delivery time (FIFO per link, like the TCP connection the real
/// link is). Owned by one replicator actor; not thread-safe.
class link_delay_order {
 public:
  /// How long to hold a frame to `peer_id` whose configured delay is `delay_ms`, sent at
  /// `now_ms`: max(delay_ms, the delivery time of the last frame still held - now), through
  /// the actor clock (whose timers due at the same time fire in the order they were set).
  /// nullopt: nothing is held for this link and no delay is set, send at once. A frame held
  /// until a millisecond already past counts as delivered; CAF's real clock could, in
  /// principle, still be dispatching it (a sub-millisecond race we accept, and Raft tolerates
  /// reordering anyway; only the order tests rely on is exact).
  std::optional<std::int64_t> delay_for(std::uint64_t peer_id, std::int64_t now_ms,
                                        unsigned delay_ms);

 private:
  std::map<std::uint64_t, std::int64_t> last_due_ms_;  // per peer; bounded by the peer count
};

}  // namespace bastion::actors
