#pragma once
// Rejoining after a forced promotion (DESIGN.md §5, issue 7; step 4 of
// replicator_recovery.hpp): a site the operator fenced comes back with an empty journal and
// without bootstrapping, so it holds no configuration, can neither campaign nor vote, and
// waits for the leader to add it (the replicator's add_voter).
//
// Its old journal is never reused: it may hold records the fenced majority committed that the
// promoted survivor never received (the loss window), at indexes the new cluster has since
// filled with other records, and its configuration still names the old voters, so with a
// second fenced site it could elect a leader of the old cluster. It is moved aside, not
// deleted: it is the evidence of what was lost (`bastion journal --dir` reads it).

#include <caf/expected.hpp>

#include <string>

namespace bastion::actors {

/// The file whose presence in a journal directory starts the replica without bootstrap.
inline constexpr const char* join_marker_file = "join-existing-cluster";

/// True when `journal_dir` holds the join marker.
bool joins_existing_cluster(const std::string& journal_dir);

struct rejoin_report {
  std::string moved_to;  // where the old journal went; empty when there was none
  std::string marker;    // the marker written
};

/// Moves `journal_dir` aside to `<journal_dir>.fenced-<suffix>` (when it holds anything) and
/// makes a new empty one holding only the join marker, durably (files and directories
/// fsynced). Refused with replicator_errc::recovery_refused, nothing changed, when the journal
/// is locked by a running node (the detail names its pid) or the target name exists.
/// Idempotent: a directory that holds only the marker is left as it is.
caf::expected<rejoin_report> prepare_rejoin(const std::string& journal_dir,
                                            const std::string& suffix);

}  // namespace bastion::actors
