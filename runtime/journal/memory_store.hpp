#pragma once
// memory_store: a deterministic in-memory log_store for tests and simulation. It honours the
// log_store contract (log_store.hpp) with one twist that makes disk behaviour testable:
// nothing queued becomes durable, and no completion runs, until the owner says so (flush(),
// flush_one()). crash() drops everything not yet durable without running its completion, as
// a power loss would, so "restart from disk" is a new replica on the same store calling
// load() again.
//
// Thread safety: every member may be called from any thread. Completions run on the thread
// that calls flush()/flush_one(), outside the store's lock, so a completion may call back
// into the store.

#include "runtime/journal/log_store.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>

namespace bastion::journal {

class memory_store final : public log_store {
 public:
  /// Bound on queued, not yet durable operations; at the bound append/truncate/put_snapshot
  /// complete at once with an error (sec::runtime_error, "queue full") instead of queueing.
  explicit memory_store(std::size_t pending_max = 1u << 16);

  caf::expected<recovered_log> load() override;
  caf::error save_hard_state(const hard_state& hs) override;
  void append(std::uint64_t first_index, std::vector<log_entry> entries, completion done) override;
  void truncate(std::uint64_t index, completion done) override;
  void put_snapshot(snapshot snap, std::uint64_t trailing, completion done) override;
  caf::expected<std::optional<snapshot>> get_snapshot() override;

  // --- Driven by the owner (the test or simulation) -------------------------------------

  /// Makes every queued operation durable, oldest first, running each completion.
  /// Returns how many completed.
  std::size_t flush();
  /// Makes the oldest queued operation durable and runs its completion. False if none.
  bool flush_one();
  /// Drops every queued operation without running its completion: what a power loss does
  /// to writes that were not yet fsync'd. Durable state is kept.
  void crash();
  /// The next `n` operations to reach the disk fail (an I/O error), leaving no trace.
  void fail_next(std::size_t n);

  // --- Inspection ------------------------------------------------------------------------

  std::size_t pending() const;
  /// What load() would return now.
  recovered_log durable() const;
  /// Index of the last durable entry (start_index - 1 when the log is empty).
  std::uint64_t last_index() const;

 private:
  enum class op_kind { append, truncate, put_snapshot };
  struct op {
    op_kind kind = op_kind::append;
    std::uint64_t index = 0;  // append: first index; truncate: first index removed
    std::vector<log_entry> entries;
    snapshot snap;
    std::uint64_t trailing = 0;
    completion done;
  };

  // REQUIRES: mutex_ held. Applies `o` to the durable state; returns what the completion
  // gets. Failed operations leave the durable state untouched.
  caf::error apply_locked(op& o);
  std::uint64_t last_index_locked() const;

  const std::size_t pending_max_;
  mutable std::mutex mutex_;
  recovered_log durable_;  // hard state, snapshot, start_index and entries
  std::deque<op> queue_;
  std::size_t fail_next_ = 0;
};

}  // namespace bastion::journal
