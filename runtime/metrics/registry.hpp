#pragma once
// Process-wide metric families rendered in the Prometheus text exposition format (0.0.4).
// A registry is handed to whoever counts (no singleton); counters, gauges and histograms are
// lock-free to update, the registry lock is taken only to create a series or render.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace bastion::metrics {

using labels = std::vector<std::pair<std::string, std::string>>;

class counter {
 public:
  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class gauge {
 public:
  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

/// Observations counted into fixed buckets (Prometheus histogram: cumulative `_bucket{le}`
/// series, `_sum` and `_count`). Observing is lock-free.
class histogram {
 public:
  /// REQUIRES: `bounds` finite and strictly ascending (checked by the registry).
  explicit histogram(std::vector<double> bounds);
  /// Counts `v` in the first bucket whose bound is >= v (the +Inf bucket past the last); NaN
  /// is not counted.
  void observe(double v) noexcept;
  const std::vector<double>& bounds() const noexcept { return bounds_; }
  /// Observations in bucket i alone (i == bounds().size(): above every bound).
  std::uint64_t in_bucket(std::size_t i) const noexcept {
    return counts_[i].load(std::memory_order_relaxed);
  }
  double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<double> sum_{0.0};
};

class registry {
 public:
  /// Returns the series `name{labels}`, creating it (and its family) on first use. Names must
  /// match [a-zA-Z_:][a-zA-Z0-9_:]* and a name keeps one type; violations are bugs and throw
  /// std::invalid_argument.
  counter& get_counter(const std::string& name, const std::string& help, const labels& l = {});
  gauge& get_gauge(const std::string& name, const std::string& help, const labels& l = {});
  /// `bounds` (finite, strictly ascending, not empty) are the family's: every series of the
  /// name must give the same ones. A label named `le` is refused (the buckets' own).
  histogram& get_histogram(const std::string& name, const std::string& help,
                           const std::vector<double>& bounds, const labels& l = {});

  /// Every family, sorted by name, with HELP and TYPE lines; label values escaped.
  std::string render_prometheus() const;

 private:
  enum class kind { counter, gauge, histogram };
  struct family {
    kind type;
    std::string help;
    std::map<std::string, std::unique_ptr<counter>> counters;  // key: rendered label set
    std::map<std::string, std::unique_ptr<gauge>> gauges;
    std::map<std::string, std::unique_ptr<histogram>> histograms;
    std::vector<double> bounds;  // histograms: the family's buckets
  };
  family& family_for(const std::string& name, const std::string& help, kind type);

  mutable std::mutex mutex_;
  std::map<std::string, family> families_;
};

}  // namespace bastion::metrics
