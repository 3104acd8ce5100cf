#include "runtime/journal/file_store.hpp"

#include "runtime/journal/atomic_file.hpp"
#include "runtime/journal/errors.hpp"
#include "runtime/journal/record_format.hpp"
#include "runtime/journal/segment_scan.hpp"
#include "runtime/journal/state_files.hpp"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <utility>

namespace bastion::journal {
namespace {

// Staged records are written out once they pass this, so a large group does not hold twice its
// size in memory; the group still shares one fdatasync.
constexpr std::size_t write_chunk_bytes = std::size_t{1} << 20;

std::uint64_t bytes_on_disk(const std::vector<log_entry>& entries) {
  std::uint64_t sum = 0;
  for (const auto& e : entries) sum += format::record_bytes(e);
  return sum;
}

void write_to_stderr(const std::string& line) {
  std::fprintf(stderr, "bastion.journal: %s\n", line.c_str());
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void complete(log_store::completion& done, caf::error err) {
  if (done) done(std::move(err));
}

}  // namespace

file_store::file_store(std::string directory, file_store_options opts,
                       std::shared_ptr<file_ops> ops, log_sink sink)
    : dir_(std::move(directory)),
      opts_(opts),
      ops_(std::move(ops)),
      sink_(sink ? std::move(sink) : log_sink{write_to_stderr}),
      queue_(opts.queue_ops_max, opts.queue_bytes_max) {
  assert(ops_ != nullptr);
}

file_store::~file_store() { stop(); }

void file_store::stop() {
  queue_.close();
  if (io_thread_.joinable()) io_thread_.join();
  close_write_fd();
  lock_.release();
}

void file_store::attach_metrics(metrics::registry& reg, const metrics::labels& l) {
  assert(!loaded_.load() && "attach_metrics after load()");
  metrics_ = std::make_unique<journal_metrics>(reg, l);
}

sys_errno file_store::timed_fdatasync(int fd) {
  const auto t0 = std::chrono::steady_clock::now();
  const sys_errno rc = ops_->fdatasync(fd);
  const auto took = std::chrono::steady_clock::now() - t0;
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(took);
  stats_.fsyncs.fetch_add(1, std::memory_order_relaxed);
  stats_.fsync_ns_total.fetch_add(static_cast<std::uint64_t>(ns.count()),
                                  std::memory_order_relaxed);
  if (metrics_) metrics_->on_fsync(ns);
  return rc;
}

void file_store::notice(std::string line) {
  sink_(line);
  report_.notices.push_back(std::move(line));
}

// --- recovery -------------------------------------------------------------------------------

caf::expected<recovered_log> file_store::load() {
  if (auto err = validate(opts_)) return err;
  if (loaded_.load()) {
    return make_error(journal_errc::closed, dir_ + ": load() called twice");
  }
  if (auto rc = ops_->make_dir(dir_)) return make_io_error(rc, "create directory " + dir_);
  // Before anything is read: a second process must not even repair a torn tail under the
  // first one's feet.
  auto lock = directory_lock::acquire(dir_);
  if (!lock) return std::move(lock.error());
  lock_ = std::move(*lock);
  auto out = load_locked();
  if (!out) lock_.release();  // a store that failed to load holds nothing
  return out;
}

caf::expected<recovered_log> file_store::load_locked() {
  std::vector<std::string> names;
  if (auto rc = ops_->list_dir(dir_, names)) return make_io_error(rc, "list directory " + dir_);
  std::vector<std::pair<std::uint64_t, std::string>> found;
  for (const auto& name : names) {
    if (ends_with(name, ".tmp")) {
      // An atomic replace that a crash interrupted before its rename: the old file still holds.
      ops_->unlink(join_path(dir_, name));
      continue;
    }
    if (auto first = format::parse_segment_file_name(name)) {
      found.emplace_back(*first, join_path(dir_, name));
    }
  }
  std::sort(found.begin(), found.end());

  auto hs = read_hard_state_file(*ops_, dir_);
  if (!hs) return std::move(hs.error());
  auto snap = read_snapshot_file(*ops_, dir_, opts_.snapshot_bytes_max);
  if (!snap) return std::move(snap.error());

  segments_.clear();
  for (auto& [first, path] : found) {
    segment seg;
    seg.first_index = first;
    seg.path = std::move(path);
    segments_.push_back(std::move(seg));
  }
  std::vector<log_entry> entries;
  if (auto err = recover_segments(entries)) return err;
  if (auto err = reconcile_with_snapshot(*snap, entries)) return err;

  if (!segments_.empty()) {
    next_index_ = segments_.back().end_index();
  } else {
    next_index_ = *snap ? (*snap)->index + 1 : 1;
  }
  total_bytes_ = 0;
  for (const auto& seg : segments_) total_bytes_ += seg.size_bytes;
  if (auto err = open_last_segment()) return err;
  if (metrics_) metrics_->on_size(total_bytes_);

  recovered_log out;
  out.hard = *hs;
  out.snap = std::move(*snap);
  out.start_index = segments_.empty() ? next_index_ : segments_.front().first_index;
  out.entries = std::move(entries);
  loaded_.store(true);
  io_thread_ = std::thread([this] { run_io_thread(); });
  return out;
}

caf::error file_store::recover_segments(std::vector<log_entry>& entries) {
  for (std::size_t k = 0; k < segments_.size(); ++k) {
    const bool is_last = k + 1 == segments_.size();
    segment& seg = segments_[k];
    segment_scan scan;
    if (k > 0 && seg.first_index != segments_[k - 1].end_index()) {
      // A missing segment (or a stray one): never a torn write.
      scan.end = segment_end::corrupt;
      scan.reason = "segment starts at index " + std::to_string(seg.first_index) +
                    ", the previous one ends before index " +
                    std::to_string(segments_[k - 1].end_index());
    } else {
      auto scanned =
          scan_segment(*ops_, seg.path, seg.first_index, is_last, opts_.record_bytes_max);
      if (!scanned) return std::move(scanned.error());
      scan = std::move(*scanned);
      ++report_.segments_scanned;
      seg.offsets = std::move(scan.offsets);
      seg.size_bytes = scan.valid_bytes;
      for (auto& e : scan.entries) entries.push_back(std::move(e));
    }
    const std::string where = seg.path + " at offset " + std::to_string(scan.bad_offset);
    // The first index lost when the log is cut here.
    std::uint64_t cut_index = seg.end_index();
    if (!scan.header_valid) cut_index = k > 0 ? segments_[k - 1].end_index() : seg.first_index;
    switch (scan.end) {
      case segment_end::clean:
        break;
      case segment_end::torn:
        notice("torn tail: cut " + where + " (" + scan.reason + "), " +
               std::to_string(scan.file_bytes - scan.bad_offset) +
               " bytes of an unacknowledged write dropped; the log continues at index " +
               std::to_string(cut_index));
        report_.torn_tail_truncated = true;
        // A torn segment is the last one.
        return scan.header_valid ? cut_segment(seg, scan.bad_offset) : delete_segments_from(k);
      case segment_end::corrupt: {
        if (!opts_.repair) {
          return make_error(journal_errc::corrupt_record,
                            where + ": " + scan.reason +
                                "; records before the tail are damaged, so load refuses (open "
                                "with repair to drop the log from this record on)");
        }
        const std::size_t later = segments_.size() - k - 1;
        notice("repair: dropped the log from index " + std::to_string(cut_index) + " on (" + where +
               ": " + scan.reason + "; " + std::to_string(later) +
               " later segment file(s) deleted)");
        report_.repaired = true;
        report_.repair_dropped_from_index = cut_index;
        if (!scan.header_valid) return delete_segments_from(k);
        if (auto err = delete_segments_from(k + 1)) return err;
        return cut_segment(seg, scan.bad_offset);
      }
    }
  }
  return caf::none;
}

caf::error file_store::cut_segment(segment& seg, std::uint64_t offset) {
  int fd = -1;
  if (auto rc = ops_->open(seg.path, open_mode::read_write, fd)) {
    return make_io_error(rc, "open " + seg.path + " to cut it");
  }
  caf::error err;
  if (auto rc = ops_->ftruncate(fd, offset)) {
    err = make_io_error(rc, "cut " + seg.path + " at offset " + std::to_string(offset));
  } else if (auto rc2 = ops_->fdatasync(fd)) {
    err = make_io_error(rc2, "fdatasync " + seg.path + " after cutting it");
  }
  ops_->close(fd);
  if (!err) seg.size_bytes = offset;
  return err;
}

caf::error file_store::delete_segments_from(std::size_t first) {
  if (first >= segments_.size()) return caf::none;
  // Newest first: a crash part-way leaves a shorter log that is still contiguous.
  while (segments_.size() > first) {
    const std::string path = segments_.back().path;
    if (auto rc = ops_->unlink(path); rc != 0 && rc != ENOENT) {
      return make_io_error(rc, "delete segment " + path);
    }
    segments_.pop_back();
  }
  if (auto rc = ops_->sync_dir(dir_)) return make_io_error(rc, "fsync directory " + dir_);
  return caf::none;
}

caf::error file_store::reconcile_with_snapshot(const std::optional<snapshot>& snap,
                                               std::vector<log_entry>& entries) {
  if (segments_.empty()) return caf::none;
  const std::uint64_t first = segments_.front().first_index;
  const std::uint64_t end = segments_.back().end_index();
  const std::uint64_t covered = snap ? snap->index : 0;  // the snapshot holds 1..covered
  if (first > covered + 1) {
    return make_error(journal_errc::corrupt_file,
                      segments_.front().path + " at offset 0: the log starts at index " +
                          std::to_string(first) + " but " +
                          (snap ? "the snapshot covers only up to index " + std::to_string(covered)
                                : std::string{"there is no snapshot"}) +
                          ", so entries are missing");
  }
  if (!snap) return caf::none;
  std::string why;
  if (end <= snap->index) {
    why = "every entry (up to index " + std::to_string(end - 1) +
          ") is older than the snapshot at index " + std::to_string(snap->index);
  } else if (first <= snap->index && entries[snap->index - first].term != snap->term) {
    why = "entry " + std::to_string(snap->index) + " has term " +
          std::to_string(entries[snap->index - first].term) + " but the snapshot says term " +
          std::to_string(snap->term) + " (the log diverged before the snapshot was installed)";
  }
  if (why.empty()) return caf::none;
  // An installed snapshot whose put_snapshot was interrupted before it dropped the old log.
  notice("dropped the whole log, " + why);
  entries.clear();
  return delete_segments_from(0);
}

caf::error file_store::open_last_segment() {
  close_write_fd();
  if (segments_.empty()) return caf::none;
  const std::string& path = segments_.back().path;
  if (auto rc = ops_->open(path, open_mode::read_write, write_fd_)) {
    write_fd_ = -1;
    return make_io_error(rc, "open " + path + " for appending");
  }
  return caf::none;
}

void file_store::close_write_fd() {
  if (write_fd_ >= 0) ops_->close(write_fd_);
  write_fd_ = -1;
}

// --- callers' side --------------------------------------------------------------------------

caf::error file_store::save_hard_state(const hard_state& hs) {
  if (!loaded_.load()) return make_error(journal_errc::closed, dir_ + ": store not loaded");
  std::lock_guard<std::mutex> guard{hard_state_mutex_};
  return write_hard_state_file(*ops_, dir_, hs);
}

caf::expected<std::optional<snapshot>> file_store::get_snapshot() {
  return read_snapshot_file(*ops_, dir_, opts_.snapshot_bytes_max);
}

void file_store::submit(pending_op op, std::uint64_t bytes) {
  if (!loaded_.load()) {
    complete(op.done, make_error(journal_errc::closed, dir_ + ": store not loaded"));
    return;
  }
  if (auto err = queue_.push(op, bytes)) complete(op.done, std::move(err));
}

void file_store::append(std::uint64_t first_index, std::vector<log_entry> entries,
                        completion done) {
  pending_op op;
  op.kind = op_kind::append;
  op.index = first_index;
  const std::uint64_t bytes = bytes_on_disk(entries);
  op.entries = std::move(entries);
  op.done = std::move(done);
  submit(std::move(op), bytes);
}

void file_store::truncate(std::uint64_t index, completion done) {
  pending_op op;
  op.kind = op_kind::truncate;
  op.index = index;
  op.done = std::move(done);
  submit(std::move(op), 0);
}

void file_store::put_snapshot(snapshot snap, std::uint64_t trailing, completion done) {
  pending_op op;
  op.kind = op_kind::snapshot;
  const std::uint64_t bytes = snap.configuration.size() + snap.data.size();
  op.snap = std::move(snap);
  op.trailing = trailing;
  op.done = std::move(done);
  submit(std::move(op), bytes);
}

// --- I/O thread -----------------------------------------------------------------------------

void file_store::run_io_thread() {
  std::vector<pending_op> batch;
  const std::chrono::microseconds linger{opts_.group_commit_linger_us};
  auto next_linger = [&] {
    return last_group_appends_ > 1 ? linger : std::chrono::microseconds{0};
  };
  while (queue_.pop_batch(batch, opts_.batch_ops_max, next_linger())) {
    std::size_t i = 0;
    while (i < batch.size()) {
      pending_op& op = batch[i];
      if (op.kind == op_kind::append) {
        std::size_t j = i + 1;
        while (j < batch.size() && batch[j].kind == op_kind::append) ++j;
        process_appends(batch, i, j);
        i = j;
        continue;
      }
      caf::error err;
      if (failed_) {
        err = make_error(journal_errc::store_failed,
                         dir_ +
                             ": an earlier I/O error could not be rolled back; reopen the "
                             "store");
      } else if (op.kind == op_kind::truncate) {
        err = apply_truncate(op.index);
      } else {
        err = apply_snapshot(op.snap, op.trailing);
      }
      complete(op.done, std::move(err));
      ++i;
    }
  }
}

caf::error file_store::check_append(const pending_op& op) const {
  if (failed_) {
    return make_error(journal_errc::store_failed,
                      dir_ + ": an earlier I/O error could not be rolled back; reopen the store");
  }
  if (op.index != next_index_) {
    return make_error(journal_errc::non_contiguous,
                      dir_ + ": append at index " + std::to_string(op.index) +
                          ", but the log's next index is " + std::to_string(next_index_));
  }
  std::uint64_t bytes = 0;
  for (std::size_t i = 0; i < op.entries.size(); ++i) {
    const auto size = op.entries[i].payload.size();
    if (size > opts_.record_bytes_max) {
      return make_error(journal_errc::record_too_large,
                        dir_ + ": entry " + std::to_string(op.index + i) + " has " +
                            std::to_string(size) + " payload bytes, record_bytes_max is " +
                            std::to_string(opts_.record_bytes_max));
    }
    bytes += format::record_bytes(op.entries[i]);
  }
  if (total_bytes_ + bytes > opts_.total_bytes_max) {
    return make_error(journal_errc::journal_full,
                      dir_ + ": appending " + std::to_string(bytes) + " bytes (entries " +
                          std::to_string(op.index) + ".." +
                          std::to_string(op.index + op.entries.size() - 1) +
                          ") would make the journal " + std::to_string(total_bytes_ + bytes) +
                          " bytes, total_bytes_max is " + std::to_string(opts_.total_bytes_max) +
                          " (a snapshot compacts it)");
  }
  return caf::none;
}

void file_store::process_appends(std::vector<pending_op>& ops, std::size_t begin, std::size_t end) {
  checkpoint cp;
  cp.segment_count = segments_.size();
  if (!segments_.empty()) {
    cp.last_size_bytes = segments_.back().size_bytes;
    cp.last_records = segments_.back().offsets.size();
  }
  cp.next_index = next_index_;
  cp.total_bytes = total_bytes_;
  staged_.clear();
  staged_offset_ = cp.last_size_bytes;
  group_created_segment_ = false;

  std::vector<caf::error> results(end - begin);
  std::vector<bool> attempted(end - begin, false);
  bool any_staged = false;
  caf::error io_err;
  for (std::size_t k = begin; k < end && !io_err; ++k) {
    if (ops[k].entries.empty()) continue;  // nothing to make durable
    if (auto err = check_append(ops[k])) {
      results[k - begin] = std::move(err);
      continue;
    }
    attempted[k - begin] = true;
    any_staged = true;
    io_err = stage_entries(ops[k]);
  }
  if (!io_err && any_staged) io_err = sync_group();
  if (io_err) {
    std::string detail = error_detail(io_err);
    if (auto rb = roll_back(cp)) {
      failed_ = true;
      detail += "; rolling back to the last good offset also failed (" + error_detail(rb) +
                "), so the store refuses further work until reopened";
      sink_(detail);
    } else {
      detail += "; the log was cut back to index " + std::to_string(next_index_ - 1);
    }
    const auto code = static_cast<journal_errc>(io_err.code());
    for (std::size_t k = begin; k < end; ++k) {
      // Appends the group did not reach depended on the failed ones.
      if (attempted[k - begin] || (!results[k - begin] && !ops[k].entries.empty())) {
        results[k - begin] = make_error(code, detail);
      }
    }
  }
  std::uint64_t acked = 0, acked_entries = 0, acked_bytes = 0, failed = 0;
  for (std::size_t k = begin; k < end; ++k) {
    if (results[k - begin]) {
      ++failed;
    } else {
      ++acked;
      acked_entries += ops[k].entries.size();
      acked_bytes += bytes_on_disk(ops[k].entries);
    }
  }
  stats_.failed_appends.fetch_add(failed, std::memory_order_relaxed);
  stats_.appends.fetch_add(acked, std::memory_order_relaxed);
  stats_.entries.fetch_add(acked_entries, std::memory_order_relaxed);
  stats_.bytes_appended.fetch_add(acked_bytes, std::memory_order_relaxed);
  if (any_staged && !io_err) stats_.group_commits.fetch_add(1, std::memory_order_relaxed);
  if (metrics_) {
    metrics_->on_appended(acked, acked_entries, acked_bytes);
    if (failed > 0) metrics_->on_failed(failed);
    if (any_staged && !io_err) metrics_->on_group_commit();
    metrics_->on_size(total_bytes_);
  }
  last_group_appends_ = end - begin;
  for (std::size_t k = begin; k < end; ++k) complete(ops[k].done, std::move(results[k - begin]));
}

caf::error file_store::stage_entries(const pending_op& op) {
  for (const auto& e : op.entries) {
    const std::uint64_t rb = format::record_bytes(e);
    if (segments_.empty() || (!segments_.back().offsets.empty() &&
                              segments_.back().size_bytes + rb > opts_.segment_bytes_max)) {
      if (auto err = start_segment(next_index_)) return err;
    }
    segment& seg = segments_.back();
    format::append_record(staged_, next_index_, e);
    seg.offsets.push_back(seg.size_bytes);
    seg.size_bytes += rb;
    total_bytes_ += rb;
    ++next_index_;
    if (staged_.size() >= write_chunk_bytes) {
      if (auto err = flush_staged()) return err;
    }
  }
  return caf::none;
}

caf::error file_store::start_segment(std::uint64_t first_index) {
  if (!segments_.empty()) {
    // The old segment's tail must be durable before the new one holds anything, so a crash
    // can leave a torn tail only in the last segment.
    if (auto err = flush_staged()) return err;
    if (auto rc = timed_fdatasync(write_fd_)) {
      return make_io_error(rc, "fdatasync " + segments_.back().path);
    }
    close_write_fd();
  }
  segment seg;
  seg.first_index = first_index;
  seg.path = join_path(dir_, format::segment_file_name(first_index));
  if (auto rc = ops_->open(seg.path, open_mode::create_new, write_fd_)) {
    write_fd_ = -1;
    return make_io_error(rc, "create segment " + seg.path);
  }
  seg.size_bytes = format::segment_header_bytes;
  segments_.push_back(std::move(seg));
  staged_.clear();
  staged_offset_ = 0;
  format::append_segment_header(staged_, first_index);
  total_bytes_ += format::segment_header_bytes;
  group_created_segment_ = true;
  return caf::none;
}

caf::error file_store::flush_staged() {
  if (staged_.empty()) return caf::none;
  if (auto rc = ops_->pwrite_all(write_fd_, staged_.data(), staged_.size(), staged_offset_)) {
    return make_io_error(rc, "write " + std::to_string(staged_.size()) + " bytes to " +
                                 segments_.back().path + " at offset " +
                                 std::to_string(staged_offset_));
  }
  staged_offset_ += staged_.size();
  staged_.clear();
  return caf::none;
}

caf::error file_store::sync_group() {
  if (auto err = flush_staged()) return err;
  if (auto rc = timed_fdatasync(write_fd_)) {
    return make_io_error(rc, "fdatasync " + segments_.back().path + " (" +
                                 std::to_string(staged_offset_) + " bytes)");
  }
  if (group_created_segment_) {
    if (auto rc = ops_->sync_dir(dir_)) return make_io_error(rc, "fsync directory " + dir_);
  }
  return caf::none;
}

caf::error file_store::roll_back(const checkpoint& cp) {
  staged_.clear();
  close_write_fd();
  next_index_ = cp.next_index;
  total_bytes_ = cp.total_bytes;
  // Segments the group created hold only unacknowledged records.
  if (auto err = delete_segments_from(cp.segment_count)) return err;
  if (segments_.empty()) return caf::none;
  segment& seg = segments_.back();
  if (auto err = cut_segment(seg, cp.last_size_bytes)) return err;
  seg.offsets.resize(cp.last_records);
  return open_last_segment();
}

caf::error file_store::apply_truncate(std::uint64_t index) {
  if (index >= next_index_) return caf::none;  // nothing at or after index
  auto fail = [this](caf::error err) {
    // The disk holds a prefix of the log (deletion goes newest first), but where it ends is
    // unknown here; reopening finds out.
    failed_ = true;
    return err;
  };
  close_write_fd();
  std::size_t keep = segments_.size();
  while (keep > 0 && segments_[keep - 1].first_index >= index) --keep;
  if (auto err = delete_segments_from(keep)) return fail(std::move(err));
  if (!segments_.empty()) {
    segment& seg = segments_.back();
    if (index < seg.end_index()) {
      const std::size_t kept_records = static_cast<std::size_t>(index - seg.first_index);
      if (auto err = cut_segment(seg, seg.offsets[kept_records])) return fail(std::move(err));
      seg.offsets.resize(kept_records);
    }
    if (auto err = open_last_segment()) return fail(std::move(err));
  }
  next_index_ = index;
  total_bytes_ = 0;
  for (const auto& seg : segments_) total_bytes_ += seg.size_bytes;
  return caf::none;
}

caf::error file_store::apply_snapshot(const snapshot& snap, std::uint64_t trailing) {
  if (auto err = write_snapshot_file(*ops_, dir_, snap, opts_.snapshot_bytes_max)) return err;
  if (trailing == 0) {
    // An installed snapshot (libraft's raft_io: trailing 0 means install) replaces the whole
    // log; the next append starts right after it.
    // Newest first, like a truncation: a crash part-way leaves a prefix of the old log, which
    // load() drops when it ends before the snapshot or disagrees with it, and keeps otherwise.
    close_write_fd();
    if (auto err = delete_segments_from(0)) {
      failed_ = true;
      return err;
    }
    next_index_ = snap.index + 1;
    total_bytes_ = 0;
  } else {
    const std::uint64_t cut = snap.index > trailing ? snap.index - trailing : 0;
    // Oldest first, whole segments only, never the one being written: a crash part-way leaves
    // a log that still starts right after a shorter prefix.
    while (segments_.size() > 1 && segments_.front().end_index() <= cut) {
      const std::string path = segments_.front().path;
      if (auto rc = ops_->unlink(path); rc != 0 && rc != ENOENT) {
        return make_io_error(rc, "delete compacted segment " + path);
      }
      total_bytes_ -= segments_.front().size_bytes;
      segments_.pop_front();
    }
  }
  if (auto rc = ops_->sync_dir(dir_)) return make_io_error(rc, "fsync directory " + dir_);
  stats_.snapshots_stored.fetch_add(1, std::memory_order_relaxed);
  if (metrics_) {
    metrics_->on_snapshot_stored();
    metrics_->on_size(total_bytes_);
  }
  return caf::none;
}

}  // namespace bastion::journal
