#include "kernels/cuda/device_pool.hpp"

#include "kernels/cuda/check.hpp"

#include <cassert>

namespace bastion::kernels::cuda {

device_pool::~device_pool() {
  // Teardown: errors are not actionable (the device may be gone already).
  for (auto& [size, p] : free_) (void)cudaFree(p);
  for (auto& [p, size] : live_) (void)cudaFree(p);
}

status device_pool::allocate(std::size_t bytes, void*& out) {
  // Small blocks round to 256 bytes, large ones to 2 MiB, so sizes repeat and blocks recycle.
  const std::size_t grain = bytes < (std::size_t{1} << 20) ? 256 : (std::size_t{2} << 20);
  const std::size_t size = (bytes + grain - 1) / grain * grain;
  auto it = free_.lower_bound(size);
  if (it != free_.end() && it->first <= 2 * size) {
    out = it->second;
    live_.emplace(out, it->first);
    in_use_ += it->first;
    cached_ -= it->first;
    free_.erase(it);
    return status::ok();
  }
  cudaError_t err = cudaMalloc(&out, size);
  if (err == cudaErrorMemoryAllocation && !free_.empty()) {
    // Give the cache back to the device and try once more before reporting.
    (void)cudaGetLastError();
    for (auto& [s, p] : free_) (void)cudaFree(p);
    free_.clear();
    cached_ = 0;
    err = cudaMalloc(&out, size);
  }
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    out = nullptr;
    return {
        err == cudaErrorMemoryAllocation ? status_code::out_of_memory : status_code::device_error,
        "cudaMalloc of " + std::to_string(size) + " bytes failed: " + cudaGetErrorString(err) +
            " (" + std::to_string(in_use_) + " bytes in use by this backend)"};
  }
  live_.emplace(out, size);
  in_use_ += size;
  return status::ok();
}

void device_pool::release(void* p) noexcept {
  if (!p) return;
  auto it = live_.find(p);
  assert(it != live_.end() && "device_pool::release: pointer not from this pool");
  if (it == live_.end()) return;
  const std::size_t size = it->second;
  live_.erase(it);
  in_use_ -= size;
  if (cached_ + size <= cached_bytes_max_) {
    free_.emplace(size, p);
    cached_ += size;
  } else {
    (void)cudaFree(p);
  }
}

}  // namespace bastion::kernels::cuda
