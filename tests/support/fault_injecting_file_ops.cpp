#include "tests/support/fault_injecting_file_ops.hpp"

#include <algorithm>

namespace bastion::journal {

sys_errno fault_injecting_file_ops::take(planned_fault& f) {
  if (f.countdown == 0) return 0;
  if (--f.countdown > 0) return 0;
  return f.err;
}

void fault_injecting_file_ops::fail_write(std::uint64_t nth, sys_errno err,
                                          std::size_t written_bytes) {
  std::lock_guard<std::mutex> guard{mutex_};
  write_fault_ = {nth, err};
  write_fault_bytes_ = written_bytes;
}

void fault_injecting_file_ops::fail_fdatasync(std::uint64_t nth, sys_errno err) {
  std::lock_guard<std::mutex> guard{mutex_};
  fdatasync_fault_ = {nth, err};
}

void fault_injecting_file_ops::fail_ftruncate(std::uint64_t nth, sys_errno err) {
  std::lock_guard<std::mutex> guard{mutex_};
  ftruncate_fault_ = {nth, err};
}

void fault_injecting_file_ops::set_fdatasync_hook(std::function<void()> hook) {
  std::lock_guard<std::mutex> guard{mutex_};
  fdatasync_hook_ = std::move(hook);
}

sys_errno fault_injecting_file_ops::open(const std::string& path, open_mode mode, int& fd) {
  return real_.open(path, mode, fd);
}

sys_errno fault_injecting_file_ops::close(int fd) { return real_.close(fd); }

sys_errno fault_injecting_file_ops::pwrite_all(int fd, const void* data, std::size_t size,
                                               std::uint64_t offset) {
  writes_.fetch_add(1);
  sys_errno injected;
  std::size_t partial;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    injected = take(write_fault_);
    partial = write_fault_bytes_;
  }
  if (injected == 0) return real_.pwrite_all(fd, data, size, offset);
  partial = std::min(partial, size);
  if (partial > 0) {
    if (auto rc = real_.pwrite_all(fd, data, partial, offset)) return rc;
  }
  return injected;
}

sys_errno fault_injecting_file_ops::pread_full(int fd, void* data, std::size_t size,
                                               std::uint64_t offset, std::size_t& got) {
  return real_.pread_full(fd, data, size, offset, got);
}

sys_errno fault_injecting_file_ops::fdatasync(int fd) {
  std::function<void()> hook;
  sys_errno injected;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    hook = fdatasync_hook_;
    injected = take(fdatasync_fault_);
  }
  if (hook) hook();  // outside the lock: the hook may block until the test releases it
  fdatasyncs_.fetch_add(1);
  return injected != 0 ? injected : real_.fdatasync(fd);
}

sys_errno fault_injecting_file_ops::ftruncate(int fd, std::uint64_t size) {
  sys_errno injected;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    injected = take(ftruncate_fault_);
  }
  return injected != 0 ? injected : real_.ftruncate(fd, size);
}

sys_errno fault_injecting_file_ops::file_size(int fd, std::uint64_t& size) {
  return real_.file_size(fd, size);
}

sys_errno fault_injecting_file_ops::rename(const std::string& from, const std::string& to) {
  return real_.rename(from, to);
}

sys_errno fault_injecting_file_ops::unlink(const std::string& path) { return real_.unlink(path); }

sys_errno fault_injecting_file_ops::sync_dir(const std::string& dir) {
  dir_syncs_.fetch_add(1);
  return real_.sync_dir(dir);
}

sys_errno fault_injecting_file_ops::make_dir(const std::string& dir) { return real_.make_dir(dir); }

sys_errno fault_injecting_file_ops::list_dir(const std::string& dir,
                                             std::vector<std::string>& names) {
  return real_.list_dir(dir, names);
}

}  // namespace bastion::journal
