#pragma once
// directory_lock: one process at a time per journal directory. Two replicas writing the same
// segments would corrupt the log silently, so file_store::load() takes this lock first and
// refuses to open a directory another process (or another store in this process) holds.
//
// The lock is flock(LOCK_EX | LOCK_NB) on `<dir>/lock`, which also holds the holder's pid for
// the error message. The kernel drops the lock when the holder exits, kill -9 included, so a
// crash never leaves a stale lock; the file itself is left behind on purpose.

#include <caf/expected.hpp>

#include <string>

namespace bastion::journal {

constexpr const char* lock_file_name = "lock";

class directory_lock {
 public:
  /// Takes the lock on `dir` (which must exist) or fails with journal_errc::locked naming the
  /// directory and the holder's pid, or io_error when the lock file cannot be opened.
  static caf::expected<directory_lock> acquire(const std::string& dir);

  directory_lock() = default;
  ~directory_lock();
  directory_lock(directory_lock&& other) noexcept;
  directory_lock& operator=(directory_lock&& other) noexcept;
  directory_lock(const directory_lock&) = delete;
  directory_lock& operator=(const directory_lock&) = delete;

  bool held() const noexcept { return fd_ >= 0; }
  /// Releases the lock now (idempotent).
  void release() noexcept;

 private:
  explicit directory_lock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace bastion::journal
