#pragma once
// Forced promotion (DESIGN.md §5, issue 7): when no majority of sites is left (both city sites
// lost, say), the operator makes one surviving replica the whole cluster again with libraft's
// recovery: a reduced configuration appended to that replica's own log, offline, before its
// node starts. Only after the operator attests that the lost sites are fenced (they cannot
// come back on their own and form the old majority again); this function cannot check that,
// the operator tool asks for the attestation.
//
// The procedure (libraft's raft_recover contract):
// 1. Stop every replica that still runs. The one to promote must be stopped too: its journal
//    directory is locked while its node runs, and force_configuration refuses a locked store.
// 2. Run force_configuration once, on the survivor with the highest term and longest log.
// 3. Start that node: as the only voter it leads at once and commits everything in its log.
// 4. A fenced site rejoins later with an EMPTY journal directory (never its old one) and
//    bootstrap off (replicator_rejoin.hpp, `bastion rejoin`), and is added back through a
//    configuration change (the replicator's add_voter, `bastion add-site`); it catches up
//    from the leader.
//
// What can be lost (the report's loss window): libraft does not store its commit index, so
// the store proves committed only what its latest snapshot covers. Everything this replica
// holds becomes committed by the new configuration, including entries the old cluster never
// committed (and so never acknowledged); records the lost majority committed that never
// reached this replica are gone, and no local file can say how many. Compare last_index with
// the commit index the lost sites last reported (metrics) to bound it.

#include "runtime/journal/log_store.hpp"

#include <caf/expected.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bastion::actors {

/// One server of a Raft configuration, as the report shows it.
struct configured_server {
  std::uint64_t id = 0;
  std::string address;
  std::string role;  // "voter", "standby" or "spare" (libraft's roles)
};

/// What force_configuration found in the store and what it wrote.
struct forced_configuration_report {
  // Found.
  std::uint64_t term = 0;                   // durable current term
  std::uint64_t voted_for = 0;              // durable vote (0: none)
  std::uint64_t snapshot_index = 0;         // last index the latest snapshot covers (0: none)
  std::uint64_t first_index = 0;            // first entry still in the log (after compaction)
  std::uint64_t last_index = 0;             // last entry before the forced configuration
  std::uint64_t last_term = 0;              // its term
  std::uint64_t known_committed_index = 0;  // what the store alone proves committed
  std::uint64_t replaced_configuration_index = 0;
  std::vector<configured_server> replaced_configuration;
  // Written.
  std::uint64_t configuration_index = 0;  // the forced configuration's entry
  std::uint64_t configuration_term = 0;
  std::vector<configured_server> configuration;
  /// Lines for the operator: what was found, written, and the possible loss window.
  std::vector<std::string> notes;

  /// Everything above as text, one fact a line.
  std::string describe() const;
};

/// Appends a configuration of exactly `keep_voters` (all voters) to the end of `store`'s log
/// through libraft's raft_init + raft_recover over the replicator's own raft_io, and waits
/// (at most `durable_wait`) until the store says it is durable. No actor system, no libraft
/// start. `self_id`/`self_address` name the replica that owns the store.
///
/// Refused with replicator_errc::recovery_refused (the detail says why), leaving the store
/// as it was:
/// - `keep_voters` empty, an id 0 or repeated, an empty address, `self_id` missing from it or
///   listed under another address than `self_address`;
/// - the store cannot be loaded, or is locked by a running node (the detail names its pid);
/// - the store is pristine (no entry, no snapshot): nothing to recover;
/// - a kept voter is not a server of the configuration being replaced (this is a reduction,
///   not a way to add servers; a mismatch also means the wrong journal directory).
/// A store that fails the write, or does not finish it in time: storage_failed.
///
/// REQUIRES: `store` is freshly constructed (load() not called yet); it stays loaded (and a
/// file_store locked) when this returns, until its owner stops it.
caf::expected<forced_configuration_report> force_configuration(
    journal::log_store& store, std::uint64_t self_id, std::string self_address,
    std::vector<std::pair<std::uint64_t, std::string>> keep_voters,
    std::chrono::milliseconds durable_wait = std::chrono::seconds{30});

}  // namespace bastion::actors
