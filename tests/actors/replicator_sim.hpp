#pragma once
// A simulated cluster of replicators on CAF's deterministic test coordinator: an in-memory
// network that can drop, delay (and so reorder), cut links one way or both, and heal; a
// memory_store per replica whose writes become durable only when the simulation flushes
// them (a seeded "disk latency"), and that loses unflushed writes on crash; clients that
// propose records and remember what they were told; and the invariants every run ends with.
// Everything random draws from one seeded RNG, so a seed replays exactly.

#include "actors/replicator.hpp"
#include "actors/replicator_state.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/journal/memory_store.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/detail/test_actor_clock.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace bastion::sim {

/// Time as CAF's test coordinator sees it, so libraft's time() and its CAF tick timers agree.
class coordinator_clock final : public clock_source {
 public:
  explicit coordinator_clock(caf::detail::test_actor_clock& clk) : clk_(clk) {}
  duration monotonic() const noexcept override {
    return std::chrono::duration_cast<duration>(clk_.current_time.time_since_epoch());
  }
  duration wall() const noexcept override { return monotonic(); }

 private:
  caf::detail::test_actor_clock& clk_;
};

/// The network's fault state. Lives in the test; the network actor consults it per frame.
class network_faults {
 public:
  explicit network_faults(std::uint64_t seed) : rng_(seed) {}

  void cut(std::uint64_t from, std::uint64_t to) { cut_.insert({from, to}); }
  void cut_both(std::uint64_t a, std::uint64_t b) {
    cut(a, b);
    cut(b, a);
  }
  void isolate(std::uint64_t id, const std::vector<std::uint64_t>& all) {
    for (auto other : all)
      if (other != id) cut_both(id, other);
  }
  void heal() { cut_.clear(); }
  bool connected(std::uint64_t from, std::uint64_t to) const { return cut_.count({from, to}) == 0; }

  unsigned drop_permille = 0;  // chance a frame is lost
  unsigned delay_min_ms = 0;   // delivery delay drawn uniformly from [min, max]:
  unsigned delay_max_ms = 0;   // different delays reorder frames

  /// -1: drop; otherwise the delay in ms.
  int route(std::uint64_t from, std::uint64_t to);

  std::uint64_t sent = 0;
  std::uint64_t dropped = 0;
  std::uint64_t delivered = 0;

 private:
  std::set<std::pair<std::uint64_t, std::uint64_t>> cut_;
  std::mt19937_64 rng_;
};

/// A journal_state that remembers every entry it was given (the simulation's records are
/// small), so a replica restored from a snapshot still holds the whole committed sequence and
/// the invariants can compare replicas that compacted at different points.
class recording_state final : public actors::journal_state {
 public:
  void apply(std::uint64_t index, const std::vector<std::uint8_t>& payload) override;
  std::vector<std::uint8_t> serialize() const override;
  caf::error restore(const std::vector<std::uint8_t>& bytes) override;
  /// What a journal_summary of the same entries would give (non-JournalRecord test payloads
  /// are ignored by it).
  std::vector<std::vector<std::uint8_t>> covered_records() const override;

  const std::vector<actors::committed_entry>& entries() const { return entries_; }
  std::uint64_t last_index() const { return entries_.empty() ? 0 : entries_.back().index; }
  std::size_t restores = 0;  // successful restore() calls

 private:
  std::vector<actors::committed_entry> entries_;
  actors::journal_summary summary_;
};

struct proposal_record {
  std::uint64_t node = 0;  // whom it was proposed to
  std::vector<std::uint8_t> payload;
  enum outcome_t { pending, acked, failed } outcome = pending;
  std::uint64_t index = 0;  // when acked
  std::string error;        // when failed
};

struct role_event {
  std::int64_t at_ms = 0;
  std::uint64_t id = 0;
  actors::replica_role role = actors::replica_role::unavailable;
  std::uint64_t term = 0;
  std::uint64_t leader_id = 0;
};

struct sim_node {
  std::uint64_t id = 0;
  std::string address;
  std::unique_ptr<journal::memory_store> store;
  // This replica's inter-site fault switch (replicator_config::faults); the same one across
  // restarts, as the node's admin endpoint would keep it. Empty unless a test sets faults.
  std::shared_ptr<actors::link_faults> faults;
  bool joining = false;                  // rejoined with an empty store: started without bootstrap
  actors::replicator_actor handle;       // null while crashed
  std::vector<actors::raft_link> links;  // this node's outgoing links, one per peer
  // What each incarnation's subscriber received, in arrival order; the last is current.
  // After a snapshot restore it lacks what the snapshot covers; the state has everything.
  std::deque<std::vector<actors::committed_entry>> applied;
  std::deque<std::shared_ptr<recording_state>> states;  // each incarnation's state machine
  actors::replica_role role = actors::replica_role::unavailable;  // as last observed
  std::uint64_t term = 0;
  bool alive() const { return static_cast<bool>(handle); }
};

struct cluster_options {
  std::size_t size = 3;
  std::uint64_t seed = 1;
  unsigned election_timeout_ms = 500;
  unsigned heartbeat_timeout_ms = 50;
  unsigned step_ms = 10;                // simulation time step
  unsigned disk_flush_permille = 1000;  // chance per step that a store flushes
  unsigned snapshot_threshold = 0;      // 0: never compact (replicator_config's meaning)
  unsigned snapshot_trailing = 0;
  std::size_t append_frame_bytes_max = 0;  // 0: the replicator's default
  metrics::registry* metrics = nullptr;    // every replica publishes here when set
};

class cluster {
 public:
  cluster(caf::actor_system& sys, caf::scheduler::test_coordinator& sched, cluster_options opt);
  ~cluster();
  cluster(const cluster&) = delete;
  cluster& operator=(const cluster&) = delete;

  // --- Time -------------------------------------------------------------------------------
  /// Runs the simulation for `ms` of simulated time.
  void advance(std::int64_t ms);
  /// Runs until `pred` holds (checked every step) or `limit_ms` passes; returns pred().
  template <class Pred>
  bool advance_until(Pred pred, std::int64_t limit_ms) {
    for (std::int64_t t = 0; t < limit_ms; t += opt_.step_ms) {
      if (pred()) return true;
      step();
    }
    return pred();
  }
  std::int64_t now_ms() const;

  // --- Faults ----------------------------------------------------------------------------
  network_faults& net() { return *faults_; }
  /// Power loss: unflushed writes are gone, the actor is killed without a goodbye.
  void crash(std::uint64_t id);
  /// A new replicator on the same store (restart from disk).
  void restart(std::uint64_t id);
  /// A crashed node comes back with an empty store and bootstrap off (a site fenced by a
  /// forced promotion rejoining): it has no configuration until a leader adds it.
  void rejoin_empty(std::uint64_t id);
  unsigned disk_flush_permille = 1000;

  // --- Clients -----------------------------------------------------------------------------
  /// Proposes `payload` to node `id` (alive or not); returns the record's slot.
  std::size_t propose(std::uint64_t id, std::vector<std::uint8_t> payload);
  /// Proposes to the node that currently believes it leads (node 1 when none does).
  std::size_t propose_to_leader(std::vector<std::uint8_t> payload);
  const proposal_record& proposal(std::size_t slot) const { return proposals_[slot]; }
  const std::deque<proposal_record>& proposals() const { return proposals_; }
  /// Asks the leader to hand over to `target`; the reply lands in transfer_results().
  void transfer(std::uint64_t from, std::uint64_t target);
  const std::vector<std::string>& transfer_results() const { return transfer_results_; }
  /// Asks `leader` to make `id` a voter; the reply ("voters N" or the error) lands in
  /// membership_results().
  void add_voter(std::uint64_t leader, std::uint64_t id);
  const std::vector<std::string>& membership_results() const { return membership_results_; }

  // --- Observation ---------------------------------------------------------------------------
  sim_node& node(std::uint64_t id) { return nodes_.at(id - 1); }
  std::vector<std::uint64_t> ids() const;
  /// The alive node whose latest observed role is leader, with the highest term; 0 if none.
  std::uint64_t leader() const;
  const std::vector<role_event>& role_log() const { return role_log_; }
  /// The replicator's status (a default one, id set, when the node is down).
  actors::replicator_status status(std::uint64_t id);
  /// Every invariant violation seen so far (empty: all held).
  std::vector<std::string> check_invariants() const;
  /// Heals every fault, restarts crashed nodes, waits for a leader, commits one final record
  /// through it and waits until every replica applied it. Returns "" or why it could not.
  std::string heal_and_settle(std::int64_t limit_ms);

 private:
  friend struct cluster_access;
  void step();
  void spawn_node(sim_node& n);
  void on_role(const actors::replicator_status& s);
  std::string describe_status(const sim_node& n);

  caf::actor_system& sys_;
  caf::scheduler::test_coordinator& sched_;
  cluster_options opt_;
  coordinator_clock clock_;
  std::unique_ptr<network_faults> faults_;
  std::mt19937_64 rng_;
  caf::actor network_;
  caf::actor client_;
  actors::role_observer observer_;
  std::vector<caf::actor> helpers_;  // link proxies and subscribers, killed at teardown
  std::vector<sim_node> nodes_;
  std::deque<proposal_record> proposals_;
  std::vector<std::string> transfer_results_;
  std::vector<std::string> membership_results_;
  std::vector<role_event> role_log_;
  std::vector<std::string> violations_;
};

}  // namespace bastion::sim

namespace bastion::sim {

/// One timed fault (or client action) in a schedule. Schedules are data: generated from a
/// seed, printed when a run fails, replayed exactly from the same seed.
struct fault_event {
  enum kind_t {
    crash,        // node a (0: the leader) loses power, unflushed writes lost; value 2: b too
    restart,      // node a (0: every crashed node) restarts from its store
    isolate,      // node a cut off from everyone, both ways
    cut,          // link a <-> b cut
    cut_one_way,  // frames a -> b lost, b -> a still delivered
    heal,         // every link restored
    drop,         // network loses `value` per mille of frames
    delay,        // network delays frames 0..`value` ms (reordering them)
    disk,         // each store flushes with probability `value` per mille per step
    propose,      // `value` records proposed to whoever leads (node 1 if nobody does)
    transfer,     // the leader is asked to hand over to node a
  };
  std::int64_t at_ms = 0;  // from the start of the schedule
  kind_t kind = heal;
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  unsigned value = 0;
};

struct fault_schedule {
  std::uint64_t seed = 0;
  std::int64_t duration_ms = 0;
  // Compaction (drawn from its own stream, so the events of a seed stay what they were):
  // libraft snapshots every `snapshot_threshold` entries keeping `snapshot_trailing`; 0: off.
  unsigned snapshot_threshold = 0;
  unsigned snapshot_trailing = 0;
  std::vector<fault_event> events;  // sorted by at_ms
};

fault_schedule make_fault_schedule(std::uint64_t seed, std::size_t nodes = 3);
/// The cluster options a schedule runs under (seed, compaction).
cluster_options options_for(const fault_schedule& s);
std::string describe(const fault_schedule& s);

/// Plays `s` on `c`, then heals and settles, then checks the invariants. Returns every
/// violation (empty: the schedule passed).
std::vector<std::string> run_fault_schedule(const fault_schedule& s, cluster& c);

}  // namespace bastion::sim
