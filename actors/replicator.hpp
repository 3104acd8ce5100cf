#pragma once
// replicator: one replica of the replicated journal (DESIGN.md §5). It owns one libraft
// server and implements libraft's raft_io on CAF: messages to the other replicas travel as
// wire::frame (kind raft_message) through one raft_link per peer, the log and term/vote live
// in the log_store handed in, time comes from the injected clock and randomness from a
// seeded RNG, and ticks from CAF timers. libraft never leaves this actor; consensus is
// libraft's, this actor only carries its I/O.
//
// What the rest of Bastion sees:
// - propose(bytes) -> the record's log index once it is committed (durable on a majority and
//   applied here), or replicator_errc::not_leader (naming the leader when known),
//   lost_leadership (outcome unknown: retry with the same request id), overloaded,
//   record_too_large, shutdown.
// - subscribe(subscriber) -> first what the journal_state remembers of earlier entries
//   (committed_entry::restored), then committed command entries, in log order, from the next
//   one applied on. Returns the index applied so far. After an InstallSnapshot every
//   subscriber gets the restored records again. After a restart the replica restores its
//   latest snapshot (if any) into the journal_state and re-applies the log after it, so a
//   subscriber attached at spawn (replicator_config::subscribers) sees every committed record
//   the snapshot does not cover; what the covered ones meant is in the journal_state
//   (replicator_state.hpp). Likewise after an InstallSnapshot from the leader.
// - watch_role(observer) -> the current status now, and again on every change of role, term
//   or known leader.
// - status() -> role, term, leader, commit/applied/last index and counters.
// - transfer(target id) -> the new leader's id once the target leads, or bad_target /
//   transfer_failed / not_leader.
// - add_voter(peer id) -> the number of voters once the configuration that makes the peer a
//   voter has committed (libraft first adds it as a spare, then catches it up and promotes
//   it); a peer already voting answers at once. The way back for a site fenced by a forced
//   promotion (DESIGN.md §5): it restarts with an empty journal and bootstrap off
//   (replicator_config::bootstrap) and is added here. Errors: not_leader, membership_failed
//   (not a configured peer, a change already running, never caught up).

#include "actors/link_faults.hpp"
#include "actors/peer_watch.hpp"
#include "actors/replicator_state.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/journal/log_store.hpp"
#include "runtime/metrics/registry.hpp"
#include "runtime/wire/frame.hpp"

#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace bastion::actors {

using propose_atom = caf::atom_constant<caf::atom("propose")>;
using subscribe_atom = caf::atom_constant<caf::atom("subscribe")>;
using watch_role_atom = caf::atom_constant<caf::atom("watchrole")>;
using status_atom = caf::atom_constant<caf::atom("replstatus")>;
using transfer_atom = caf::atom_constant<caf::atom("transfer")>;
using add_voter_atom = caf::atom_constant<caf::atom("addvoter")>;
using peer_link_atom = caf::atom_constant<caf::atom("peerlink")>;
using committed_atom = caf::atom_constant<caf::atom("committed")>;
using role_changed_atom = caf::atom_constant<caf::atom("rolechange")>;

/// libraft's server states, in its numbering.
enum class replica_role : std::uint8_t { unavailable = 0, follower = 1, candidate = 2, leader = 3 };

const char* to_string(replica_role role) noexcept;

/// One committed command entry, as libraft applied it; or, with `restored`, a record the
/// journal_state gave for entries the subscriber will not see (journal_state::covered_records:
/// compacted or applied before it subscribed). Restored records are not log entries: index 0,
/// and they may repeat what the subscriber already saw.
struct committed_entry {
  std::uint64_t index = 0;
  std::vector<std::uint8_t> payload;
  bool restored = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, committed_entry& x) {
  return f(caf::meta::type_name("bastion.committed_entry"), x.index, x.payload, x.restored);
}

struct replicator_status {
  std::uint64_t id = 0;
  std::string address;
  replica_role role = replica_role::unavailable;
  std::uint64_t term = 0;
  std::uint64_t leader_id = 0;  // 0: unknown
  std::string leader_address;
  std::uint64_t commit_index = 0;
  std::uint64_t last_applied = 0;
  std::uint64_t last_index = 0;
  std::uint64_t frames_received = 0;
  std::uint64_t frames_dropped = 0;               // the sum of the reasons below
  std::uint64_t frames_dropped_malformed = 0;     // not a valid Raft message
  std::uint64_t frames_dropped_oversize = 0;      // over frame_limits.payload_bytes_max
  std::uint64_t frames_dropped_unsealed = 0;      // seal does not verify, stale epoch
  std::uint64_t frames_dropped_misaddressed = 0;  // meant for another replica
  std::uint64_t frames_dropped_shutdown = 0;      // arrived after the replicator stopped
  std::uint64_t frames_dropped_fault = 0;         // from a peer whose incoming link a fault cut
  // Outgoing frames the fault switch (replicator_config::faults) acted on; not in
  // frames_dropped, which counts what arrived.
  std::uint64_t frames_fault_outgoing_dropped = 0;  // cut_outgoing or drop_ratio: never sent
  std::uint64_t frames_fault_delayed = 0;           // held back by delay_ms (or behind one)
  std::uint64_t storage_errors = 0;
  std::uint64_t snapshot_index = 0;       // last index covered by the latest snapshot here
  std::uint64_t snapshots_taken = 0;      // by this incarnation, compacting its own log
  std::uint64_t snapshots_installed = 0;  // received from a leader and restored
  std::uint64_t append_frames_split = 0;  // AppendEntries cut to append_frame_bytes_max
  std::string last_error;  // the most recent dropped frame or storage error, for people
  // While leading: each other voter's id and the highest index it has acknowledged (libraft's
  // match index), in the same order. The coordinator hands leadership back to a preferred
  // site once its replica has caught up.
  std::vector<std::uint64_t> peer_ids;
  std::vector<std::uint64_t> peer_match_index;
  // While leading, in the same order: how long ago the oldest entry the peer lacks was
  // appended, and how long since a frame from it arrived (peer_watch.hpp).
  std::vector<std::int64_t> peer_lag_ms;
  std::vector<std::int64_t> peer_silence_ms;
  // The alerts firing here, one line each, e.g. "journal_peer_lagging peer 2: 7.1 s behind
  // (alert above 5.0 s)". Empty on a follower: only the leader judges.
  std::vector<std::string> alerts;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, replicator_status& x) {
  return f(caf::meta::type_name("bastion.replicator_status"), x.id, x.address, x.role, x.term,
           x.leader_id, x.leader_address, x.commit_index, x.last_applied, x.last_index,
           x.frames_received, x.frames_dropped, x.frames_dropped_malformed,
           x.frames_dropped_oversize, x.frames_dropped_unsealed, x.frames_dropped_misaddressed,
           x.frames_dropped_shutdown, x.frames_dropped_fault, x.frames_fault_outgoing_dropped,
           x.frames_fault_delayed, x.storage_errors, x.snapshot_index, x.snapshots_taken,
           x.snapshots_installed, x.append_frames_split, x.last_error, x.peer_ids,
           x.peer_match_index, x.peer_lag_ms, x.peer_silence_ms, x.alerts);
}

/// How a replicator reaches one peer: in production the peer's replicator (a remote actor
/// handle), in tests an in-memory network that may drop, delay or reorder.
using raft_link = caf::typed_actor<caf::reacts_to<wire::frame>>;
using commit_subscriber = caf::typed_actor<caf::reacts_to<committed_atom, committed_entry>>;
using role_observer = caf::typed_actor<caf::reacts_to<role_changed_atom, replicator_status>>;

using replicator_actor =
    caf::typed_actor<caf::replies_to<propose_atom, std::vector<std::uint8_t>>::with<std::uint64_t>,
                     caf::replies_to<subscribe_atom, commit_subscriber>::with<std::uint64_t>,
                     caf::replies_to<watch_role_atom, role_observer>::with<replicator_status>,
                     caf::replies_to<status_atom>::with<replicator_status>,
                     caf::replies_to<transfer_atom, std::uint64_t>::with<std::uint64_t>,
                     caf::replies_to<add_voter_atom, std::uint64_t>::with<std::uint64_t>,
                     caf::reacts_to<peer_link_atom, std::uint64_t, raft_link>,  // a peer's link
                                                                                // changed
                     caf::reacts_to<wire::frame>>;  // a Raft message from a peer

struct replicator_peer {
  std::uint64_t id = 0;  // libraft server id, > 0, unique in the cluster
  std::string address;   // as written in the Raft configuration; told to clients as a hint
  raft_link link;        // may be null until the peer is reachable (peer_link_atom sets it)
};

struct replicator_config {
  std::uint64_t id = 0;
  std::string address;
  std::vector<replicator_peer> peers;  // the other voters
  /// On a pristine store, write the initial configuration (this replica and every peer, all
  /// voters) as entry 1. Every replica of a new cluster is started with the same peers.
  /// Off for a replica rejoining an existing cluster: it has no configuration, so it can
  /// neither campaign nor vote until a leader adds it (add_voter).
  bool bootstrap = true;
  unsigned election_timeout_ms = 1000;  // DESIGN.md §5: about 1 s
  unsigned heartbeat_timeout_ms = 100;  // and about 100 ms; also the tick interval
  bool pre_vote = true;                 // a returning partitioned replica does not disrupt
  std::uint64_t rng_seed = 0;           // seeds libraft's election timeout randomisation
  std::size_t proposals_in_flight_max = 1024;
  /// A proposal larger than this is refused (record_too_large naming both sizes).
  std::size_t record_bytes_max = std::size_t{1} << 20;
  /// Payload bytes of the entries in one AppendEntries frame we send. libraft hands raft_io
  /// every entry a follower lacks in one message; the replicator sends the longest prefix
  /// that fits (at least one entry) and the follower's answer makes libraft send the rest.
  /// Must leave room for record_bytes_max plus framing inside frame_limits.payload_bytes_max
  /// (checked at start).
  std::size_t append_frame_bytes_max = std::size_t{2} << 20;
  std::size_t subscribers_max = 16;
  std::vector<commit_subscriber> subscribers;  // attached before the first entry is applied
  std::vector<role_observer> role_observers;   // likewise, before the first role change
  /// Frames received from peers are opened under these limits; a larger one is dropped and
  /// counted (frames_dropped_oversize). The InstallSnapshot frame carries the whole
  /// journal_state, so payload_bytes_max bounds it too.
  wire::limits frame_limits;
  /// The state machine snapshots capture (replicator_state.hpp); null: a journal_summary.
  std::shared_ptr<journal_state> state;
  /// libraft takes a snapshot (and the store compacts the log) every `snapshot_threshold`
  /// applied entries, keeping the last `snapshot_trailing` entries in the log so a follower
  /// only a little behind is still fed from the log rather than sent a snapshot.
  /// 0: never snapshot.
  unsigned snapshot_threshold = 8192;
  unsigned snapshot_trailing = 2048;
  /// Where the replicator publishes its series (role, term, indexes, counters; see
  /// replicator.cpp's replicator_metrics), labelled replica="<id>"; null: nowhere.
  /// REQUIRES: outlives the actor.
  metrics::registry* metrics = nullptr;
  /// The inter-site fault switch (link_faults.hpp), read for every frame sent and received;
  /// the node's admin endpoint changes it while the replicator runs. Null: no faults.
  std::shared_ptr<link_faults> faults;
  /// The leader's lag and silence alerts on its peers (peer_watch.hpp): thresholds, checked on
  /// every tick. Firing and resolving are published as metrics, in status().alerts, and told
  /// to `log`.
  peer_watch_settings watch;
  /// Lines for people (alerts starting and ending); null: nowhere.
  std::function<void(const std::string&)> log;
};

/// Spawns a replicator. It loads `store` and starts libraft at once; a store that cannot be
/// loaded, or a libraft start failure, makes it exit with replicator_errc::storage_failed or
/// raft_failed. REQUIRES: `store` and `clock` outlive the actor, and no other replicator uses
/// `store` while this one runs.
replicator_actor spawn_replicator(caf::actor_system& sys, replicator_config cfg,
                                  journal::log_store& store, const clock_source& clock);

/// Registers the replicator's message types and error category with an actor system config.
void announce_replicator_types(caf::actor_system_config& cfg);

}  // namespace bastion::actors
