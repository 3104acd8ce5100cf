#pragma once
// journal_metrics: a file_store's series in a metrics::registry (DESIGN.md §7), all labelled
// with the labels the owner gives (e.g. replica="1"):
//   bastion_journal_appends_total, _entries_total, _bytes_total  acknowledged appends
//   bastion_journal_failed_appends_total                          appends failed (disk full, I/O)
//   bastion_journal_group_commits_total                           fsyncs that acknowledged appends
//   bastion_journal_fsync_seconds_bucket{le=...}, _count, _sum    every fdatasync of log data, as a
//                                                                 Prometheus histogram's series
//   bastion_journal_snapshots_stored_total                        put_snapshot completed
//   bastion_journal_bytes                                         size of the segment files now
// The registry has counters and gauges only, so the histogram is spelled out as cumulative
// bucket counters plus a count and a sum; histogram_quantile() reads them as usual.
// Updated on the store's I/O thread; the registry makes that safe.

#include "runtime/metrics/registry.hpp"

#include <array>
#include <chrono>
#include <cstdint>

namespace bastion::journal {

class journal_metrics {
 public:
  /// Upper bounds of the fsync buckets, in seconds (+Inf is added after them).
  static constexpr std::array<double, 12> fsync_bounds_s = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0};

  journal_metrics(metrics::registry& reg, const metrics::labels& l);

  void on_appended(std::uint64_t appends, std::uint64_t entries, std::uint64_t bytes);
  void on_failed(std::uint64_t appends);
  void on_group_commit();
  void on_fsync(std::chrono::nanoseconds took);
  void on_snapshot_stored();
  void on_size(std::uint64_t total_bytes);

 private:
  metrics::counter* appends_;
  metrics::counter* entries_;
  metrics::counter* bytes_;
  metrics::counter* failed_;
  metrics::counter* group_commits_;
  std::array<metrics::counter*, fsync_bounds_s.size() + 1> fsync_buckets_{};  // last: +Inf
  metrics::counter* fsync_count_;
  metrics::gauge* fsync_sum_s_;
  metrics::counter* snapshots_;
  metrics::gauge* size_bytes_;
};

}  // namespace bastion::journal
