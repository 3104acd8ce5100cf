#pragma once
// Typed errors of the replicated journal (actors/replicator), category "replicator" (the
// journal store's own errors are runtime/journal/errors.hpp). Every one is an operating error
// a caller handles (retry elsewhere, retry later, report), never a bug.

#include <caf/atom.hpp>
#include <caf/error.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace bastion::actors {

enum class replicator_errc : std::uint8_t {
  // Codes start at 1: CAF treats code 0 as "no error".
  not_leader = 1,     // this replica cannot take proposals; the context names the leader if known
  lost_leadership,    // the leader stepped down before the record committed: outcome unknown,
                      // retry with the same request id
  overloaded,         // too many proposals or subscribers in flight; retry later
  record_too_large,   // a proposal over replicator_config::record_bytes_max
  bad_target,         // leadership transfer to a server that is not a voting peer
  transfer_failed,    // the transfer target did not become leader in time
  storage_failed,     // the log_store refused a read or write
  shutdown,           // the replicator is stopping; outcome unknown for pending proposals
  raft_failed,        // libraft refused the operation for another reason (detail says which)
  bad_snapshot,       // snapshot data the journal_state cannot restore (from a peer or a disk)
  frame_too_large,    // a Raft frame over replicator_config::frame_limits (dropped and counted)
  bad_link_fault,     // a link fault setting out of range (link_faults::set names field and value)
  recovery_refused,   // forced promotion refused: the store or the new configuration is unfit
  membership_failed,  // adding a voter failed (unknown server, a change already running,
                      // the server never caught up); the detail says which
};

/// The atom naming the category, registered by announce_replicator_types.
using replicator_category = caf::atom_constant<caf::atom("replicator")>;

const char* to_string(replicator_errc code) noexcept;

/// ADL hook so `caf::error err = replicator_errc::x;` works.
caf::error make_error(replicator_errc code);
/// The error with a message for the person who reads the log.
caf::error make_error(replicator_errc code, std::string detail);

/// not_leader carries the leader's id and address when this replica knows them.
caf::error make_not_leader(std::string detail, std::uint64_t leader_id, std::string leader_address);

struct leader_hint {
  std::uint64_t id = 0;
  std::string address;
};

/// The leader named by a not_leader error, if it names one.
std::optional<leader_hint> leader_of(const caf::error& err);

/// The detail string of a journal error (empty for other errors or none given).
std::string replicator_error_detail(const caf::error& err);

/// Renders an error of the replicator category, e.g. "replicator.not_leader: <detail>".
std::string render_replicator_error(std::uint8_t code, caf::atom_value, const caf::message& ctx);

}  // namespace bastion::actors
