#pragma once
// file_store: the durable log_store (log_store.hpp states the contract) on segmented,
// append-only, CRC32C-checked files in one directory per replica. Layout and record format:
// record_format.hpp; recovery rules: segment_scan.hpp.
//
// Threads: append, truncate and put_snapshot queue an operation (bounded: queue_full at the
// bound) for ONE I/O thread, which applies them strictly in call order. Consecutive appends it
// finds waiting are written together and share one fdatasync (group commit); their callbacks
// run on the I/O thread after it. save_hard_state and get_snapshot run on the caller's thread
// (the hard state has its own file, so it needs no ordering with the log).
//
// Failures: when a write or fdatasync fails, every append of that group fails with the error
// and the segment is truncated back to the last good offset (segments the group created are
// deleted), so load() never returns a record that was not acknowledged. When even that
// rollback fails, the store stops accepting work (store_failed) until it is reopened; load()
// then truncates whatever torn tail is left.
//
// Lifecycle: construct, load() once (locks the directory, scans, repairs a torn tail, starts the
// I/O thread), use, stop() or destroy (both drain: every queued operation completes before the
// thread exits, then the directory lock is released). A directory locked by another process,
// or by another file_store in this one, is refused (journal_errc::locked naming the holder).

#include "runtime/journal/directory_lock.hpp"
#include "runtime/journal/file_ops.hpp"
#include "runtime/journal/file_store_options.hpp"
#include "runtime/journal/journal_metrics.hpp"
#include "runtime/journal/log_store.hpp"
#include "runtime/journal/op_queue.hpp"
#include "runtime/metrics/registry.hpp"

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bastion::journal {

/// What load() found and changed, for the operator.
struct recovery_report {
  std::uint64_t segments_scanned = 0;
  bool torn_tail_truncated = false;  // a partial/damaged last record was cut off
  bool repaired = false;             // opened with repair and a damaged older record was dropped
  std::uint64_t repair_dropped_from_index = 0;  // with repaired: the first index dropped
  std::vector<std::string> notices;  // one line per action taken, also sent to the log sink
};

/// Counters for the metrics page; read from any thread.
struct file_store_stats {
  std::atomic<std::uint64_t> appends{0};         // append operations acknowledged
  std::atomic<std::uint64_t> entries{0};         // entries in them
  std::atomic<std::uint64_t> group_commits{0};   // fdatasyncs that acknowledged appends
  std::atomic<std::uint64_t> failed_appends{0};  // append operations failed
  std::atomic<std::uint64_t> bytes_appended{0};  // record bytes (headers included) acknowledged
  std::atomic<std::uint64_t> fsyncs{0};          // fdatasyncs of segment data
  std::atomic<std::uint64_t> fsync_ns_total{0};  // time spent in them
  std::atomic<std::uint64_t> snapshots_stored{0};
};

class file_store final : public log_store {
 public:
  /// Receives one line per notable recovery action (torn tail cut, repair). Called on the
  /// thread calling load().
  using log_sink = std::function<void(const std::string&)>;

  /// `directory` holds this replica's journal (created when missing, not its parents).
  /// Nothing touches the disk before load(). `ops` is the file system (posix_file_ops in
  /// production). `sink` defaults to writing the lines to stderr.
  file_store(std::string directory, file_store_options opts, std::shared_ptr<file_ops> ops,
             log_sink sink = {});
  ~file_store() override;

  file_store(const file_store&) = delete;
  file_store& operator=(const file_store&) = delete;

  caf::expected<recovered_log> load() override;
  caf::error save_hard_state(const hard_state& hs) override;
  void append(std::uint64_t first_index, std::vector<log_entry> entries, completion done) override;
  void truncate(std::uint64_t index, completion done) override;
  void put_snapshot(snapshot snap, std::uint64_t trailing, completion done) override;
  caf::expected<std::optional<snapshot>> get_snapshot() override;

  /// Publishes the store's counters (journal_metrics.hpp) in `reg` under `l` from now on.
  /// REQUIRES: called before load(); `reg` outlives the store.
  void attach_metrics(metrics::registry& reg, const metrics::labels& l);

  /// Completes every queued operation, then stops the I/O thread. Later operations fail with
  /// closed. Idempotent. REQUIRES: not called from a completion callback.
  void stop();

  /// What the last load() did. REQUIRES: load() returned.
  const recovery_report& report() const noexcept { return report_; }
  const file_store_stats& stats() const noexcept { return stats_; }
  const std::string& directory() const noexcept { return dir_; }

 private:
  enum class op_kind : std::uint8_t { append, truncate, snapshot };
  struct pending_op {
    op_kind kind = op_kind::append;
    std::uint64_t index = 0;  // append: first index; truncate: first index to delete
    std::vector<log_entry> entries;
    snapshot snap;
    std::uint64_t trailing = 0;
    completion done;
  };

  // One segment file. Owned by the I/O thread after load().
  struct segment {
    std::uint64_t first_index = 0;
    std::string path;
    std::uint64_t size_bytes = 0;        // bytes written (durable unless a group is open)
    std::vector<std::uint64_t> offsets;  // record offset of each entry
    std::uint64_t end_index() const { return first_index + offsets.size(); }  // one past last
  };

  // State to return to when a group of appends fails.
  struct checkpoint {
    std::size_t segment_count = 0;
    std::uint64_t last_size_bytes = 0;
    std::size_t last_records = 0;
    std::uint64_t next_index = 0;
    std::uint64_t total_bytes = 0;
  };

  // Recovery helpers (load()).
  caf::expected<recovered_log> load_locked();
  caf::error recover_segments(std::vector<log_entry>& entries);
  caf::error cut_segment(segment& seg, std::uint64_t offset);
  caf::error delete_segments_from(std::size_t first);
  caf::error reconcile_with_snapshot(const std::optional<snapshot>& snap,
                                     std::vector<log_entry>& entries);
  void notice(std::string line);

  // I/O thread.
  void run_io_thread();
  void submit(pending_op op, std::uint64_t bytes);
  void process_appends(std::vector<pending_op>& ops, std::size_t begin, std::size_t end);
  caf::error check_append(const pending_op& op) const;
  caf::error stage_entries(const pending_op& op);
  caf::error start_segment(std::uint64_t first_index);
  caf::error flush_staged();
  caf::error sync_group();
  caf::error roll_back(const checkpoint& cp);
  caf::error apply_truncate(std::uint64_t index);
  caf::error apply_snapshot(const snapshot& snap, std::uint64_t trailing);
  caf::error open_last_segment();
  void close_write_fd();
  /// fdatasync of segment data, timed for the stats and metrics.
  sys_errno timed_fdatasync(int fd);

  // Immutable after construction.
  const std::string dir_;
  const file_store_options opts_;
  const std::shared_ptr<file_ops> ops_;
  const log_sink sink_;

  recovery_report report_;
  file_store_stats stats_;
  std::unique_ptr<journal_metrics> metrics_;  // null unless attach_metrics was called
  directory_lock lock_;                       // held from load() until stop()
  std::mutex hard_state_mutex_;               // serialises save_hard_state callers
  std::atomic<bool> loaded_{false};

  // Owned by the I/O thread once it runs (by load() before).
  std::deque<segment> segments_;
  int write_fd_ = -1;  // the last segment, open for writing; -1 when none
  std::uint64_t next_index_ = 1;
  std::uint64_t total_bytes_ = 0;
  bool failed_ = false;               // a rollback failed: refuse everything until reopened
  std::vector<std::uint8_t> staged_;  // records not yet written to the last segment
  std::uint64_t staged_offset_ = 0;   // where staged_ goes in the last segment
  bool group_created_segment_ = false;
  std::size_t last_group_appends_ = 0;  // appends in the previous group (linger decision)

  // Declared last: the thread stops (in stop()) before the state above is destroyed.
  op_queue<pending_op> queue_;
  std::thread io_thread_;
};

}  // namespace bastion::journal
