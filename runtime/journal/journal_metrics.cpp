#include "runtime/journal/journal_metrics.hpp"

#include <cstdio>
#include <string>

namespace bastion::journal {
namespace {

metrics::labels with(metrics::labels l, const char* name, std::string value) {
  l.emplace_back(name, std::move(value));
  return l;
}

std::string bound_label(double bound_s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", bound_s);
  return buf;
}

}  // namespace

journal_metrics::journal_metrics(metrics::registry& reg, const metrics::labels& l)
    : appends_(&reg.get_counter("bastion_journal_appends_total",
                                "Append operations the journal made durable", l)),
      entries_(&reg.get_counter("bastion_journal_entries_total",
                                "Log entries the journal made durable", l)),
      bytes_(&reg.get_counter("bastion_journal_bytes_total",
                              "Bytes of records (headers included) the journal made durable", l)),
      failed_(&reg.get_counter("bastion_journal_failed_appends_total",
                               "Append operations that failed (disk full, I/O error)", l)),
      group_commits_(&reg.get_counter("bastion_journal_group_commits_total",
                                      "fdatasyncs that acknowledged one or more appends", l)),
      fsync_count_(
          &reg.get_counter("bastion_journal_fsync_seconds_count", "fdatasyncs of journal data", l)),
      fsync_sum_s_(&reg.get_gauge("bastion_journal_fsync_seconds_sum",
                                  "Seconds spent in fdatasync of journal data, in total", l)),
      snapshots_(&reg.get_counter("bastion_journal_snapshots_stored_total",
                                  "Snapshots written durably (taken here or installed)", l)),
      size_bytes_(
          &reg.get_gauge("bastion_journal_bytes", "Size of the journal's segment files now", l)) {
  for (std::size_t i = 0; i < fsync_buckets_.size(); ++i) {
    const std::string le = i < fsync_bounds_s.size() ? bound_label(fsync_bounds_s[i]) : "+Inf";
    fsync_buckets_[i] =
        &reg.get_counter("bastion_journal_fsync_seconds_bucket",
                         "fdatasyncs of journal data that took at most `le` seconds (cumulative)",
                         with(l, "le", le));
  }
}

void journal_metrics::on_appended(std::uint64_t appends, std::uint64_t entries,
                                  std::uint64_t bytes) {
  appends_->inc(appends);
  entries_->inc(entries);
  bytes_->inc(bytes);
}

void journal_metrics::on_failed(std::uint64_t appends) { failed_->inc(appends); }

void journal_metrics::on_group_commit() { group_commits_->inc(); }

void journal_metrics::on_fsync(std::chrono::nanoseconds took) {
  const double s = std::chrono::duration<double>(took).count();
  for (std::size_t i = 0; i < fsync_buckets_.size(); ++i)
    if (i == fsync_bounds_s.size() || s <= fsync_bounds_s[i]) fsync_buckets_[i]->inc();
  fsync_count_->inc();
  // One writer (the I/O thread), so read-add-store loses nothing.
  fsync_sum_s_->set(fsync_sum_s_->value() + s);
}

void journal_metrics::on_snapshot_stored() { snapshots_->inc(); }

void journal_metrics::on_size(std::uint64_t total_bytes) {
  size_bytes_->set(static_cast<double>(total_bytes));
}

}  // namespace bastion::journal
