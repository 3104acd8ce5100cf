#pragma once
// file_ops: the few file-system calls the journal makes, behind an interface so tests can
// count fsyncs and inject ENOSPC, EIO and torn writes deterministically (STYLE.md 8; the model
// is LevelDB's Env and its fault-injection env). posix_file_ops is the real one.
//
// Every call returns 0 or an errno value; nothing throws. Paths are full paths. Handles are
// plain file descriptors owned by the caller, who closes them with close().

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace bastion::journal {

/// 0 on success, otherwise the errno value of the failed call.
using sys_errno = int;

enum class open_mode : std::uint8_t {
  read_only,       // existing file, read
  read_write,      // existing file, read and write
  create_new,      // create; fails with EEXIST when the file is there
  create_replace,  // create or truncate to zero
};

class file_ops {
 public:
  virtual ~file_ops() = default;

  virtual sys_errno open(const std::string& path, open_mode mode, int& fd) = 0;
  virtual sys_errno close(int fd) = 0;
  /// Writes all `size` bytes at `offset`, retrying short writes. On failure some prefix may
  /// have reached the file (the caller truncates it away).
  virtual sys_errno pwrite_all(int fd, const void* data, std::size_t size,
                               std::uint64_t offset) = 0;
  /// Reads up to `size` bytes at `offset`; `got` < size only at the end of the file.
  virtual sys_errno pread_full(int fd, void* data, std::size_t size, std::uint64_t offset,
                               std::size_t& got) = 0;
  /// Makes the file's data (and the size when it changed) durable.
  virtual sys_errno fdatasync(int fd) = 0;
  virtual sys_errno ftruncate(int fd, std::uint64_t size) = 0;
  virtual sys_errno file_size(int fd, std::uint64_t& size) = 0;
  /// Atomically replaces `to` with `from` (same directory).
  virtual sys_errno rename(const std::string& from, const std::string& to) = 0;
  virtual sys_errno unlink(const std::string& path) = 0;
  /// Makes the directory's entries (creations, renames, unlinks) durable.
  virtual sys_errno sync_dir(const std::string& dir) = 0;
  /// Creates the directory when missing (not its parents).
  virtual sys_errno make_dir(const std::string& dir) = 0;
  /// The names (not paths) of the regular files in `dir`.
  virtual sys_errno list_dir(const std::string& dir, std::vector<std::string>& names) = 0;
};

/// The real file system through POSIX calls (open, pwrite, fdatasync, ...).
class posix_file_ops final : public file_ops {
 public:
  sys_errno open(const std::string& path, open_mode mode, int& fd) override;
  sys_errno close(int fd) override;
  sys_errno pwrite_all(int fd, const void* data, std::size_t size, std::uint64_t offset) override;
  sys_errno pread_full(int fd, void* data, std::size_t size, std::uint64_t offset,
                       std::size_t& got) override;
  sys_errno fdatasync(int fd) override;
  sys_errno ftruncate(int fd, std::uint64_t size) override;
  sys_errno file_size(int fd, std::uint64_t& size) override;
  sys_errno rename(const std::string& from, const std::string& to) override;
  sys_errno unlink(const std::string& path) override;
  sys_errno sync_dir(const std::string& dir) override;
  sys_errno make_dir(const std::string& dir) override;
  sys_errno list_dir(const std::string& dir, std::vector<std::string>& names) override;
};

}  // namespace bastion::journal
