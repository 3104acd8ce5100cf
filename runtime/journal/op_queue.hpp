#pragma once
// op_queue: the bounded, closeable FIFO between the threads calling a store and its one I/O
// thread. Bounded in operations and in bytes; at a bound, push refuses with queue_full (the
// caller reports it) instead of blocking an actor thread. Closing lets the consumer drain what
// was queued, then stop.

#include "runtime/journal/errors.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace bastion::journal {

template <class T>
class op_queue {
 public:
  op_queue(std::size_t ops_max, std::uint64_t bytes_max)
      : ops_max_(ops_max), bytes_max_(bytes_max) {}

  /// Queues `item` weighing `bytes`. Fails with closed after close(), or queue_full at a bound
  /// (one item is always accepted into an empty queue, however heavy). On failure `item` is
  /// left untouched, so the caller can still complete it.
  caf::error push(T& item, std::uint64_t bytes) {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      if (closed_) return make_error(journal_errc::closed, "the journal store is stopped");
      if (!items_.empty()) {
        if (items_.size() >= ops_max_) {
          return make_error(journal_errc::queue_full,
                            "I/O queue holds " + std::to_string(items_.size()) +
                                " operations, queue_ops_max is " + std::to_string(ops_max_));
        }
        if (bytes_ + bytes > bytes_max_) {
          return make_error(journal_errc::queue_full,
                            "I/O queue holds " + std::to_string(bytes_) + " bytes, adding " +
                                std::to_string(bytes) + " would pass queue_bytes_max " +
                                std::to_string(bytes_max_));
        }
      }
      items_.push_back(entry{std::move(item), bytes});
      bytes_ += bytes;
    }
    ready_.notify_one();
    return caf::none;
  }

  /// Blocks until items are queued or the queue is closed; then, when `linger` is positive,
  /// waits up to that long more for further items (up to `max_items`), so that work arriving
  /// just behind can join the batch. Moves up to `max_items` into `out` (cleared first), in
  /// push order. Returns false once closed and drained.
  bool pop_batch(std::vector<T>& out, std::size_t max_items,
                 std::chrono::microseconds linger = std::chrono::microseconds{0}) {
    out.clear();
    std::unique_lock<std::mutex> guard{mutex_};
    ready_.wait(guard, [this] { return closed_ || !items_.empty(); });
    if (items_.empty()) return false;
    if (linger.count() > 0 && items_.size() < max_items) {
      ready_.wait_for(guard, linger, [&] { return closed_ || items_.size() >= max_items; });
    }
    while (!items_.empty() && out.size() < max_items) {
      bytes_ -= items_.front().bytes;
      out.push_back(std::move(items_.front().item));
      items_.pop_front();
    }
    return true;
  }

  /// Refuses further pushes; pop_batch still returns what is queued, then false.
  void close() {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      closed_ = true;
    }
    ready_.notify_all();
  }

  std::size_t size() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return items_.size();
  }

 private:
  struct entry {
    T item;
    std::uint64_t bytes;
  };
  const std::size_t ops_max_;
  const std::uint64_t bytes_max_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<entry> items_;
  std::uint64_t bytes_ = 0;
  bool closed_ = false;
};

}  // namespace bastion::journal
