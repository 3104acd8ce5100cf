#include "runtime/journal/state_files.hpp"

#include "runtime/journal/atomic_file.hpp"
#include "runtime/journal/crc32c.hpp"
#include "runtime/journal/errors.hpp"
#include "runtime/journal/record_format.hpp"

#include <cerrno>

namespace bastion::journal {

caf::error write_hard_state_file(file_ops& ops, const std::string& dir, const hard_state& hs) {
  return write_file_atomically(ops, dir, hard_state_file_name, format::encode_hard_state(hs));
}

caf::expected<hard_state> read_hard_state_file(file_ops& ops, const std::string& dir) {
  const std::string path = join_path(dir, hard_state_file_name);
  // Read a little more than the format's size, so an oversized file is reported as such.
  auto bytes = read_small_file(ops, path, format::hard_state_bytes + 1);
  if (!bytes) return std::move(bytes.error());
  if (!*bytes) return hard_state{};
  std::string why;
  auto hs = format::decode_hard_state(**bytes, why);
  if (!hs) return make_error(journal_errc::corrupt_file, path + " at offset 0: " + why);
  return *hs;
}

caf::error write_snapshot_file(file_ops& ops, const std::string& dir, const snapshot& snap,
                               std::uint64_t bytes_max) {
  const std::uint64_t body = snap.configuration.size() + snap.data.size();
  if (body > bytes_max) {
    return make_error(journal_errc::record_too_large,
                      "snapshot at index " + std::to_string(snap.index) + " has " +
                          std::to_string(body) + " bytes, snapshot_bytes_max is " +
                          std::to_string(bytes_max));
  }
  return write_file_atomically(ops, dir, snapshot_file_name, format::encode_snapshot(snap));
}

caf::expected<std::optional<snapshot>> read_snapshot_file(file_ops& ops, const std::string& dir,
                                                          std::uint64_t bytes_max) {
  const std::string path = join_path(dir, snapshot_file_name);
  int fd = -1;
  if (auto rc = ops.open(path, open_mode::read_only, fd)) {
    if (rc == ENOENT) return std::optional<snapshot>{};
    return make_io_error(rc, "open " + path);
  }
  auto fail = [&](caf::error err) {
    ops.close(fd);
    return err;
  };
  auto corrupt = [&](const std::string& why) {
    return fail(make_error(journal_errc::corrupt_file, path + " at offset 0: " + why));
  };
  std::uint64_t size = 0;
  if (auto rc = ops.file_size(fd, size)) return fail(make_io_error(rc, "stat " + path));
  if (size < format::snapshot_header_bytes) {
    return corrupt("file is " + std::to_string(size) + " bytes, shorter than its header");
  }
  std::uint8_t h[format::snapshot_header_bytes];
  std::size_t got = 0;
  if (auto rc = ops.pread_full(fd, h, sizeof h, 0, got)) {
    return fail(make_io_error(rc, "read " + path));
  }
  if (got != sizeof h) return corrupt("file shrank while being read");
  std::string why;
  auto header = format::decode_snapshot_header(h, why);
  if (!header) return corrupt(why);
  // Both sizes are bounded before they are added, so the sum cannot overflow.
  if (header->configuration_bytes > bytes_max || header->data_bytes > bytes_max ||
      header->configuration_bytes + header->data_bytes > bytes_max) {
    return corrupt("declares " + std::to_string(header->configuration_bytes) +
                   " configuration bytes and " + std::to_string(header->data_bytes) +
                   " data bytes, over snapshot_bytes_max " + std::to_string(bytes_max));
  }
  const std::uint64_t body = header->configuration_bytes + header->data_bytes;
  if (size != format::snapshot_header_bytes + body) {
    return corrupt("file is " + std::to_string(size) + " bytes, the header declares " +
                   std::to_string(format::snapshot_header_bytes + body));
  }
  snapshot snap;
  snap.index = header->index;
  snap.term = header->term;
  snap.configuration_index = header->configuration_index;
  snap.configuration.resize(static_cast<std::size_t>(header->configuration_bytes));
  snap.data.resize(static_cast<std::size_t>(header->data_bytes));
  if (auto rc = ops.pread_full(fd, snap.configuration.data(), snap.configuration.size(),
                               format::snapshot_header_bytes, got)) {
    return fail(make_io_error(rc, "read " + path));
  }
  if (got != snap.configuration.size()) return corrupt("file shrank while being read");
  if (auto rc = ops.pread_full(fd, snap.data.data(), snap.data.size(),
                               format::snapshot_header_bytes + snap.configuration.size(), got)) {
    return fail(make_io_error(rc, "read " + path));
  }
  if (got != snap.data.size()) return corrupt("file shrank while being read");
  ops.close(fd);
  std::uint32_t crc = crc32c(snap.configuration.data(), snap.configuration.size());
  crc = crc32c_extend(crc, snap.data.data(), snap.data.size());
  if (crc != header->body_crc) {
    return make_error(journal_errc::corrupt_file,
                      path + " at offset " + std::to_string(format::snapshot_header_bytes) +
                          ": snapshot body checksum mismatch");
  }
  return std::optional<snapshot>{std::move(snap)};
}

}  // namespace bastion::journal
