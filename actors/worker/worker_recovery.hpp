#pragma once
// How an unhealthy worker comes back (DESIGN.md §3: a backend error fails the affected
// requests, never the node). After a failing step the worker waits a backoff, then probes its
// backend with a canary; a passing probe makes it healthy again, a failing one doubles the wait
// up to a cap. So a transient fault (a driver hiccup, memory pressure) costs one worker a short
// absence, and a dead device costs one cheap probe per cap interval, never a busy loop.
//
// Pure arithmetic on the caller's time (monotonic ns), so tests replay any schedule exactly.

#include "kernels/backend.hpp"

#include <chrono>
#include <cstdint>

namespace bastion::worker {

class recovery_backoff {
 public:
  /// REQUIRES: 0 < initial <= max.
  recovery_backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max);

  /// A step or a probe failed at `now`: the next probe is due one backoff later, and the
  /// backoff after that is twice as long, at most `max`.
  void failed(std::chrono::nanoseconds now);
  /// A probe passed: the next failure starts again from `initial`.
  void recovered();

  bool probe_due(std::chrono::nanoseconds now) const { return waiting_ && now >= next_probe_; }
  /// When the next probe is due (meaningful while waiting()).
  std::chrono::nanoseconds next_probe() const { return next_probe_; }
  /// True between a failure and the probe that passes.
  bool waiting() const { return waiting_; }
  /// Failed probes since the last failure of a step.
  std::uint32_t failed_probes() const { return failed_probes_; }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  std::chrono::milliseconds backoff_;  // the wait the next failure gets
  std::chrono::nanoseconds next_probe_{0};
  bool waiting_ = false;
  std::uint32_t failed_probes_ = 0;
};

/// The canary: a 2 x 2 matrix product of known values through the backend's own memory
/// (allocate, upload, matmul_f32, download, synchronize), checked exactly. Fails with the
/// backend's status, or with device_error naming the wrong value.
kernels::status probe_backend(kernels::backend& be);

}  // namespace bastion::worker
