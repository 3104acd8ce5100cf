#pragma once
// The two small state files beside the segments: "hard_state" (term, vote) and "snapshot".
// Both are replaced atomically and durably (atomic_file.hpp); a damaged one is refused with
// corrupt_file naming it, since a torn write cannot produce one.

#include "runtime/journal/file_ops.hpp"
#include "runtime/journal/log_store.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <optional>
#include <string>

namespace bastion::journal {

constexpr const char* hard_state_file_name = "hard_state";
constexpr const char* snapshot_file_name = "snapshot";

/// Durable before it returns.
caf::error write_hard_state_file(file_ops& ops, const std::string& dir, const hard_state& hs);
/// The stored hard state; {0, 0} when none was ever saved.
caf::expected<hard_state> read_hard_state_file(file_ops& ops, const std::string& dir);

/// Durable before it returns. Fails with record_too_large when configuration + data exceed
/// `bytes_max`.
caf::error write_snapshot_file(file_ops& ops, const std::string& dir, const snapshot& snap,
                               std::uint64_t bytes_max);
/// The stored snapshot, or nothing when none was ever stored. A file declaring more than
/// `bytes_max` bytes is refused before anything is allocated for it.
caf::expected<std::optional<snapshot>> read_snapshot_file(file_ops& ops, const std::string& dir,
                                                          std::uint64_t bytes_max);

}  // namespace bastion::journal
