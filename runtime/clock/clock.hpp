#pragma once
// The time source handed to every component that reads time (STYLE.md 8: no singletons).
// Production uses system_clock_source; tests use manual_clock to replay exactly.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace bastion {

class clock_source {
 public:
  using duration = std::chrono::nanoseconds;
  virtual ~clock_source() = default;
  /// Monotonic time for intervals and timeouts.
  virtual duration monotonic() const noexcept = 0;
  /// Wall time since the Unix epoch, for records people read.
  virtual duration wall() const noexcept = 0;
};

class system_clock_source final : public clock_source {
 public:
  duration monotonic() const noexcept override {
    return std::chrono::steady_clock::now().time_since_epoch();
  }
  duration wall() const noexcept override {
    return std::chrono::system_clock::now().time_since_epoch();
  }
};

/// A clock that moves only when told; safe to advance from one thread while others read.
class manual_clock final : public clock_source {
 public:
  explicit manual_clock(duration start = duration::zero()) : now_ns_(start.count()) {}
  void advance(duration d) noexcept { now_ns_.fetch_add(d.count(), std::memory_order_relaxed); }
  duration monotonic() const noexcept override {
    return duration{now_ns_.load(std::memory_order_relaxed)};
  }
  duration wall() const noexcept override { return monotonic(); }

 private:
  std::atomic<std::int64_t> now_ns_;
};

}  // namespace bastion
