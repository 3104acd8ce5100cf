#pragma once
// Finding a step that does not come back. A device call that hangs (a kernel that never ends,
// a GPU fallen off the bus, a driver call stuck in the kernel) blocks the worker's step thread
// inside it: its requests wait for good, their stop flags and deadlines go unread, and the
// worker still looks healthy, so the scheduler keeps routing to it and never falls back to
// another worker. No error ever comes back to say so.
//
// The step thread says when it enters and leaves a device call (a step, a probe, making a
// tensor-parallel group); the worker's watch thread asks whether it has been inside one call
// for longer than the limit. If so the worker gives up on the call: it hands the call's
// requests back to the scheduler and reports itself unhealthy, without waiting for the call.
// Should the call return after all, the step thread learns here that it was given up on and
// drops what it produced: the requests are another worker's by then.
//
// Pure bookkeeping on the caller's time (monotonic ns), not thread-safe: the worker keeps it
// under its lock, which is also what makes "the step thread is still inside the call" hold
// for as long as the watch thread holds that lock.

#include <chrono>
#include <optional>
#include <string>

namespace bastion::worker {

class stall_detector {
 public:
  /// `limit` 0: no call is ever overdue.
  explicit stall_detector(std::chrono::nanoseconds limit) : limit_(limit) {}

  /// The step thread enters a device call at `now`; `what` names it in the report (copied into
  /// a buffer kept across calls: no allocation per step once it is long enough).
  /// REQUIRES: not inside a call.
  void enter(std::chrono::nanoseconds now, const std::string& what);
  /// The step thread left its call. True when the call had been given up on meanwhile: what
  /// it produced must be dropped.
  bool leave();

  /// The step thread's call, when it has been inside it for longer than the limit at `now` and
  /// it was not given up on yet: "<what> has not returned for <seconds> s".
  std::optional<std::string> overdue(std::chrono::nanoseconds now) const;
  /// The watch thread gives up on the current call. REQUIRES: overdue(now) was set.
  void give_up() { given_up_ = true; }

  bool inside() const { return inside_; }
  /// Inside a call that was given up on: the worker is stalled until the call returns.
  bool stalled() const { return inside_ && given_up_; }
  std::chrono::nanoseconds limit() const { return limit_; }

 private:
  std::chrono::nanoseconds limit_;
  bool inside_ = false;
  bool given_up_ = false;
  std::chrono::nanoseconds entered_{0};
  std::string what_;
};

}  // namespace bastion::worker
