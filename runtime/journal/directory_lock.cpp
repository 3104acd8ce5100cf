#include "runtime/journal/directory_lock.hpp"

#include "runtime/journal/atomic_file.hpp"
#include "runtime/journal/errors.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

namespace bastion::journal {

caf::expected<directory_lock> directory_lock::acquire(const std::string& dir) {
  const std::string path = join_path(dir, lock_file_name);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return make_io_error(errno, "open lock file " + path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) {
      ::close(fd);
      return make_io_error(err, "lock " + path);
    }
    // The holder wrote its pid when it took the lock; a holder still writing it reads as empty.
    char buf[32] = {};
    const ssize_t got = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    std::string holder = got > 0 ? std::string(buf, static_cast<std::size_t>(got)) : "";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    return make_error(journal_errc::locked,
                      "journal directory " + dir + " is in use by process " +
                          (holder.empty() ? std::string{"(pid not yet written)"} : holder) +
                          " (lock file " + path + "); two replicas must never share one directory");
  }
  // Best effort: the pid is only for the message above, the lock itself is the flock.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) {
    [[maybe_unused]] const ssize_t wrote = ::pwrite(fd, pid.data(), pid.size(), 0);
  }
  return directory_lock{fd};
}

directory_lock::~directory_lock() { release(); }

directory_lock::directory_lock(directory_lock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)) {}

directory_lock& directory_lock::operator=(directory_lock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void directory_lock::release() noexcept {
  if (fd_ < 0) return;
  ::close(fd_);  // closing the only descriptor of the open file drops the flock
  fd_ = -1;
}

}  // namespace bastion::journal
