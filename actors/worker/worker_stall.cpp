#include "actors/worker/worker_stall.hpp"

#include <cassert>
#include <cstdio>

namespace bastion::worker {

void stall_detector::enter(std::chrono::nanoseconds now, const std::string& what) {
  assert(!inside_ && "device calls of the step thread do not nest");
  inside_ = true;
  given_up_ = false;
  entered_ = now;
  what_ = what;
}

bool stall_detector::leave() {
  const bool dropped = given_up_;
  inside_ = false;
  given_up_ = false;
  return dropped;
}

std::optional<std::string> stall_detector::overdue(std::chrono::nanoseconds now) const {
  if (!inside_ || given_up_ || limit_.count() <= 0 || now - entered_ <= limit_) return {};
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.1f", std::chrono::duration<double>(now - entered_).count());
  return what_ + " has not returned for " + secs + " s";
}

}  // namespace bastion::worker
