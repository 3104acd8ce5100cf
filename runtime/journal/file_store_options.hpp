#pragma once
// The bounds and switches of a file_store (STYLE.md 11: a limit on everything, units last).

#include <caf/error.hpp>

#include <cstddef>
#include <cstdint>

namespace bastion::journal {

struct file_store_options {
  /// A segment file is closed and a new one started when the next record would make it larger
  /// than this. A single record larger than this gets a segment of its own.
  std::uint64_t segment_bytes_max = std::uint64_t{64} << 20;
  /// The sum of all segment files. An append that would pass it fails with journal_full
  /// (compaction through put_snapshot frees space).
  std::uint64_t total_bytes_max = std::uint64_t{16} << 30;
  /// The payload of one entry; larger ones fail with record_too_large. Recovery refuses a
  /// record declaring more, so a damaged length never makes load() allocate it.
  std::uint32_t record_bytes_max = std::uint32_t{16} << 20;
  /// configuration + data of one snapshot, written or read.
  std::uint64_t snapshot_bytes_max = std::uint64_t{4} << 30;
  /// Operations waiting for the I/O thread; the next one fails with queue_full.
  std::size_t queue_ops_max = 4096;
  /// Payload bytes waiting for the I/O thread; the next operation fails with queue_full,
  /// except that one operation is always accepted into an empty queue.
  std::uint64_t queue_bytes_max = std::uint64_t{256} << 20;
  /// Operations the I/O thread takes in one round (consecutive appends among them share one
  /// fdatasync).
  std::size_t batch_ops_max = 1024;
  /// Group commit linger: when the previous group held appends from more than one caller, the
  /// I/O thread waits up to this long after the first queued operation for more to join the
  /// next group (callers just released by the last fsync need a moment to submit again).
  /// A lone caller never waits. 0 turns lingering off.
  std::uint32_t group_commit_linger_us = 0;
  /// Recovery: a damaged record before the tail makes load() fail, naming the file and offset.
  /// With repair, load() instead drops the log from that record on and reports it.
  bool repair = false;
};

/// An error (journal_errc::invalid_options naming the field, value and reason) or none.
caf::error validate(const file_store_options& opts);

}  // namespace bastion::journal
