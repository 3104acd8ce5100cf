#pragma once
// Device memory for one backend: plain cudaMalloc (never managed memory), with freed blocks
// kept for reuse up to a bound, so a decoder that regrows its scratch does not pay cudaMalloc
// and cudaFree (which synchronizes the device) every step. Reuse is safe because every user of
// a backend's memory runs on that backend's one stream, in order.
// REQUIRES: used by one thread at a time, with the backend's device current.

#include "kernels/status.hpp"

#include <cstddef>
#include <map>
#include <unordered_map>

namespace bastion::kernels::cuda {

class device_pool {
 public:
  /// Keeps at most `cached_bytes_max` of freed blocks; frees the rest at once.
  explicit device_pool(std::size_t cached_bytes_max) : cached_bytes_max_(cached_bytes_max) {}
  device_pool(const device_pool&) = delete;
  device_pool& operator=(const device_pool&) = delete;
  ~device_pool();

  /// A block of at least `bytes`, from the cache when one fits without wasting more than half
  /// of it, else from cudaMalloc. out_of_memory (naming the size) when the device has none.
  status allocate(std::size_t bytes, void*& out);
  /// Returns a block from allocate; null is ignored. Unknown pointers are a bug (asserted).
  void release(void* p) noexcept;

  std::size_t bytes_in_use() const noexcept { return in_use_; }
  std::size_t bytes_cached() const noexcept { return cached_; }

 private:
  std::size_t cached_bytes_max_;
  std::size_t in_use_ = 0;
  std::size_t cached_ = 0;
  std::unordered_map<void*, std::size_t> live_;  // block -> its size
  std::multimap<std::size_t, void*> free_;       // size -> cached block
};

}  // namespace bastion::kernels::cuda
