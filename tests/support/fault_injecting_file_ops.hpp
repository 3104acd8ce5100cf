#pragma once
// fault_injecting_file_ops: wraps another file_ops, counts the calls that matter for
// durability and fails chosen ones on purpose: the n-th write fails with ENOSPC after writing
// part of its buffer (a torn write), the n-th fdatasync or ftruncate fails with EIO, ...
// Tests only: it lives in tests/support (library bastion_journal_test_support), outside the
// product library. Deterministic (faults are counted, never random) and thread-safe.

#include "runtime/journal/file_ops.hpp"

#include <atomic>
#include <functional>
#include <mutex>

namespace bastion::journal {

class fault_injecting_file_ops final : public file_ops {
 public:
  /// REQUIRES: `real` outlives this object.
  explicit fault_injecting_file_ops(file_ops& real) : real_(real) {}

  /// The `nth` pwrite_all from now on (1 = the next one) writes the first `written_bytes` of its
  /// buffer, then fails with `err`.
  void fail_write(std::uint64_t nth, sys_errno err, std::size_t written_bytes = 0);
  /// The `nth` fdatasync from now on fails with `err` (the data stays in the file, unsynced).
  /// A call already blocked in the hook has been counted and does not count again.
  void fail_fdatasync(std::uint64_t nth, sys_errno err);
  /// The `nth` ftruncate from now on fails with `err`.
  void fail_ftruncate(std::uint64_t nth, sys_errno err);
  /// Runs in every fdatasync after its fault plan was counted, on the calling thread (e.g. to hold
  /// the I/O thread while a test queues more work). Pass {} to remove.
  void set_fdatasync_hook(std::function<void()> hook);

  std::uint64_t fdatasync_count() const noexcept { return fdatasyncs_.load(); }
  std::uint64_t write_count() const noexcept { return writes_.load(); }
  std::uint64_t sync_dir_count() const noexcept { return dir_syncs_.load(); }

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

 private:
  struct planned_fault {
    std::uint64_t countdown = 0;  // 0: none planned
    sys_errno err = 0;
  };
  // Counts one call against `f`; returns the errno to inject, or 0.
  static sys_errno take(planned_fault& f);

  file_ops& real_;
  std::mutex mutex_;  // guards the plans and the hook
  planned_fault write_fault_;
  std::size_t write_fault_bytes_ = 0;
  planned_fault fdatasync_fault_;
  planned_fault ftruncate_fault_;
  std::function<void()> fdatasync_hook_;
  std::atomic<std::uint64_t> fdatasyncs_{0};
  std::atomic<std::uint64_t> writes_{0};
  std::atomic<std::uint64_t> dir_syncs_{0};
};

}  // namespace bastion::journal
