#include "runtime/journal/memory_store.hpp"

#include <caf/sec.hpp>

#include <algorithm>
#include <string>
#include <utility>

namespace bastion::journal {

memory_store::memory_store(std::size_t pending_max) : pending_max_(pending_max) {}

caf::expected<recovered_log> memory_store::load() {
  std::lock_guard<std::mutex> guard{mutex_};
  return durable_;
}

caf::error memory_store::save_hard_state(const hard_state& hs) {
  // Durable on return, as the contract requires: there is no queue between here and "disk".
  std::lock_guard<std::mutex> guard{mutex_};
  durable_.hard = hs;
  return caf::none;
}

void memory_store::append(std::uint64_t first_index, std::vector<log_entry> entries,
                          completion done) {
  op o{op_kind::append, first_index, std::move(entries), {}, 0, std::move(done)};
  std::unique_lock<std::mutex> guard{mutex_};
  if (queue_.size() >= pending_max_) {
    guard.unlock();
    o.done(caf::make_error(caf::sec::runtime_error, "memory_store: queue full (" +
                                                        std::to_string(pending_max_) +
                                                        " operations not yet durable)"));
    return;
  }
  queue_.push_back(std::move(o));
}

void memory_store::truncate(std::uint64_t index, completion done) {
  op o{op_kind::truncate, index, {}, {}, 0, std::move(done)};
  std::unique_lock<std::mutex> guard{mutex_};
  if (queue_.size() >= pending_max_) {
    guard.unlock();
    o.done(caf::make_error(caf::sec::runtime_error, "memory_store: queue full"));
    return;
  }
  queue_.push_back(std::move(o));
}

void memory_store::put_snapshot(snapshot snap, std::uint64_t trailing, completion done) {
  op o{op_kind::put_snapshot, snap.index, {}, std::move(snap), trailing, std::move(done)};
  std::unique_lock<std::mutex> guard{mutex_};
  if (queue_.size() >= pending_max_) {
    guard.unlock();
    o.done(caf::make_error(caf::sec::runtime_error, "memory_store: queue full"));
    return;
  }
  queue_.push_back(std::move(o));
}

caf::expected<std::optional<snapshot>> memory_store::get_snapshot() {
  std::lock_guard<std::mutex> guard{mutex_};
  return durable_.snap;
}

std::uint64_t memory_store::last_index_locked() const {
  return durable_.start_index + durable_.entries.size() - 1;
}

caf::error memory_store::apply_locked(op& o) {
  if (fail_next_ > 0) {
    --fail_next_;
    return caf::make_error(caf::sec::runtime_error, "memory_store: injected I/O error");
  }
  auto& d = durable_;
  switch (o.kind) {
    case op_kind::append: {
      // Contiguity is part of the contract; a caller that breaks it gets an error, and the
      // log is left as it was (no half-written entry).
      if (o.index != last_index_locked() + 1)
        return caf::make_error(caf::sec::invalid_argument,
                               "memory_store: append at index " + std::to_string(o.index) +
                                   " but the last entry is " + std::to_string(last_index_locked()));
      for (auto& e : o.entries) d.entries.push_back(std::move(e));
      return caf::none;
    }
    case op_kind::truncate: {
      if (o.index < d.start_index)
        return caf::make_error(caf::sec::invalid_argument,
                               "memory_store: truncate at index " + std::to_string(o.index) +
                                   " before the first kept entry " + std::to_string(d.start_index));
      if (o.index <= last_index_locked())
        d.entries.resize(static_cast<std::size_t>(o.index - d.start_index));
      return caf::none;
    }
    case op_kind::put_snapshot: {
      const std::uint64_t snap_index = o.snap.index;
      // Keep entries with index > snap_index - trailing; trailing == 0 drops the whole log
      // (the snapshot replaces it, libraft's InstallSnapshot case).
      std::uint64_t new_start = d.start_index;
      if (o.trailing == 0) {
        d.entries.clear();
        new_start = snap_index + 1;
      } else if (snap_index > o.trailing) {
        const std::uint64_t keep_from = snap_index - o.trailing + 1;
        if (keep_from > d.start_index) {
          const std::uint64_t drop =
              std::min<std::uint64_t>(keep_from - d.start_index, d.entries.size());
          d.entries.erase(d.entries.begin(), d.entries.begin() + static_cast<std::ptrdiff_t>(drop));
          new_start = keep_from;
        }
      }
      d.start_index = new_start;
      d.snap = std::move(o.snap);
      return caf::none;
    }
  }
  return caf::make_error(caf::sec::invalid_argument, "memory_store: unknown operation");
}

bool memory_store::flush_one() {
  op o;
  caf::error result;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (queue_.empty()) return false;
    o = std::move(queue_.front());
    queue_.pop_front();
    result = apply_locked(o);
  }
  if (o.done) o.done(std::move(result));
  return true;
}

std::size_t memory_store::flush() {
  std::size_t n = 0;
  while (flush_one()) ++n;
  return n;
}

void memory_store::crash() {
  std::deque<op> dropped;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    dropped.swap(queue_);
    fail_next_ = 0;
  }
  // Completions are destroyed, never run: nothing they guarded was acknowledged.
}

void memory_store::fail_next(std::size_t n) {
  std::lock_guard<std::mutex> guard{mutex_};
  fail_next_ = n;
}

std::size_t memory_store::pending() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return queue_.size();
}

recovered_log memory_store::durable() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return durable_;
}

std::uint64_t memory_store::last_index() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return last_index_locked();
}

}  // namespace bastion::journal
