#include "runtime/journal/atomic_file.hpp"

#include "runtime/journal/errors.hpp"

#include <cerrno>

namespace bastion::journal {

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

caf::error write_file_atomically(file_ops& ops, const std::string& dir, const std::string& name,
                                 const std::vector<std::uint8_t>& bytes) {
  const std::string path = join_path(dir, name);
  const std::string tmp = path + ".tmp";
  int fd = -1;
  if (auto rc = ops.open(tmp, open_mode::create_replace, fd)) {
    return make_io_error(rc, "create " + tmp);
  }
  caf::error err;
  if (auto rc = ops.pwrite_all(fd, bytes.data(), bytes.size(), 0)) {
    err = make_io_error(rc, "write " + std::to_string(bytes.size()) + " bytes to " + tmp);
  } else if (auto rc2 = ops.fdatasync(fd)) {
    err = make_io_error(rc2, "fdatasync " + tmp);
  }
  ops.close(fd);
  if (!err) {
    if (auto rc = ops.rename(tmp, path)) err = make_io_error(rc, "rename " + tmp + " to " + path);
  }
  if (err) {
    ops.unlink(tmp);
    return err;
  }
  if (auto rc = ops.sync_dir(dir)) return make_io_error(rc, "fsync directory " + dir);
  return caf::none;
}

caf::expected<std::optional<std::vector<std::uint8_t>>> read_small_file(file_ops& ops,
                                                                        const std::string& path,
                                                                        std::uint64_t bytes_max) {
  int fd = -1;
  if (auto rc = ops.open(path, open_mode::read_only, fd)) {
    if (rc == ENOENT) return std::optional<std::vector<std::uint8_t>>{};
    return make_io_error(rc, "open " + path);
  }
  std::uint64_t size = 0;
  if (auto rc = ops.file_size(fd, size)) {
    ops.close(fd);
    return make_io_error(rc, "stat " + path);
  }
  if (size > bytes_max) {
    ops.close(fd);
    return make_error(journal_errc::corrupt_file, path + ": " + std::to_string(size) +
                                                      " bytes, more than the " +
                                                      std::to_string(bytes_max) + " allowed");
  }
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  std::size_t got = 0;
  const auto rc = ops.pread_full(fd, bytes.data(), bytes.size(), 0, got);
  ops.close(fd);
  if (rc) return make_io_error(rc, "read " + path);
  bytes.resize(got);
  return std::optional<std::vector<std::uint8_t>>{std::move(bytes)};
}

}  // namespace bastion::journal
