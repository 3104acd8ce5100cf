#include "actors/worker/worker_recovery.hpp"

#include <algorithm>
#include <cassert>
#include <string>

namespace bastion::worker {

recovery_backoff::recovery_backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max)
    : initial_(initial), max_(max), backoff_(initial) {
  assert(initial.count() > 0 && initial <= max);
}

void recovery_backoff::failed(std::chrono::nanoseconds now) {
  if (waiting_) ++failed_probes_;  // a failure while waiting is a failed probe
  waiting_ = true;
  next_probe_ = now + backoff_;
  backoff_ = std::min(backoff_ * 2, max_);
}

void recovery_backoff::recovered() {
  waiting_ = false;
  failed_probes_ = 0;
  backoff_ = initial_;
}

kernels::status probe_backend(kernels::backend& be) {
  // x = [1 2], w = [[3 4], [5 6]]: y = x * w^T = [11 17]. Small integers: exact in F32.
  const float host_x[2] = {1.0f, 2.0f};
  const float host_w[4] = {3.0f, 4.0f, 5.0f, 6.0f};
  const float want[2] = {11.0f, 17.0f};
  constexpr std::size_t x_bytes = sizeof(host_x), w_bytes = sizeof(host_w), y_bytes = 2 * 4;
  void* mem = nullptr;
  if (auto st = be.allocate(x_bytes + w_bytes + y_bytes, mem); !st) return st;
  auto* x = static_cast<float*>(mem);
  auto* w = x + 2;
  auto* y = w + 4;
  float got[2] = {0.0f, 0.0f};
  kernels::status st = be.upload(x, host_x, x_bytes);
  if (st) st = be.upload(w, host_w, w_bytes);
  if (st) st = be.matmul_f32(x, w, y, 1, 2, 2);
  if (st) st = be.download(got, y, y_bytes);
  if (st) st = be.synchronize();
  be.deallocate(mem);
  if (!st) return st;
  for (int i = 0; i < 2; ++i)
    if (got[i] != want[i])
      return {kernels::status_code::device_error,
              "the backend's canary product gave " + std::to_string(got[i]) + " at " +
                  std::to_string(i) + ", not " + std::to_string(want[i])};
  return kernels::status::ok();
}

}  // namespace bastion::worker
