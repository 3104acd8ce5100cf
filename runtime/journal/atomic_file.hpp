#pragma once
// Small whole-file helpers over file_ops: replace a file atomically and durably, read one back
// with a size bound. The hard state and the snapshot use them.

#include "runtime/journal/file_ops.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bastion::journal {

/// Replaces dir/name with `bytes`, durably: writes dir/name.tmp, fdatasyncs it, renames it over
/// dir/name and fsyncs the directory. A crash at any point leaves either the old file or the
/// new one, never a mix. On failure the temp file is removed (best effort).
caf::error write_file_atomically(file_ops& ops, const std::string& dir, const std::string& name,
                                 const std::vector<std::uint8_t>& bytes);

/// The whole content of `path`, nothing when it does not exist, or an error when it cannot be
/// read or is larger than `bytes_max` (nothing is allocated for such a file).
caf::expected<std::optional<std::vector<std::uint8_t>>> read_small_file(file_ops& ops,
                                                                        const std::string& path,
                                                                        std::uint64_t bytes_max);

/// "dir/name".
std::string join_path(const std::string& dir, const std::string& name);

}  // namespace bastion::journal
