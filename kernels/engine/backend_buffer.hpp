#pragma once
// Owns one allocation of a backend's memory (backend::allocate), or of host memory when no
// backend is given, and frees it on destruction. Move-only.
// REQUIRES: the backend outlives the buffer.

#include "kernels/backend.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

namespace bastion::kernels {

class backend_buffer {
 public:
  backend_buffer() = default;
  backend_buffer(const backend_buffer&) = delete;
  backend_buffer& operator=(const backend_buffer&) = delete;
  backend_buffer(backend_buffer&& o) noexcept
      : be_(std::exchange(o.be_, nullptr)),
        data_(std::exchange(o.data_, nullptr)),
        bytes_(std::exchange(o.bytes_, 0)) {}
  backend_buffer& operator=(backend_buffer&& o) noexcept {
    if (this != &o) {
      reset();
      be_ = std::exchange(o.be_, nullptr);
      data_ = std::exchange(o.data_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  ~backend_buffer() { reset(); }

  /// Makes `out` own `bytes` of zeroed memory of `be` (host memory when `be` is null).
  static status make(backend* be, std::size_t bytes, backend_buffer& out) {
    backend_buffer b;
    b.be_ = be;
    b.bytes_ = bytes;
    if (bytes == 0) {
      out = std::move(b);
      return status::ok();
    }
    if (be) {
      if (auto s = be->allocate(bytes, b.data_); !s) return s;
    } else {
      b.data_ = std::calloc(bytes, 1);
      if (!b.data_)
        return {status_code::out_of_memory,
                "host allocation of " + std::to_string(bytes) + " bytes failed"};
    }
    out = std::move(b);
    return status::ok();
  }

  /// Grows to at least `bytes` (contents are not kept); keeps the allocation when it is large
  /// enough already. Grows by half again so a slowly rising size reallocates rarely.
  status reserve(backend* be, std::size_t bytes) {
    if (data_ && be == be_ && bytes <= bytes_) return status::ok();
    return make(be, std::max(bytes, bytes_ + bytes_ / 2), *this);
  }

  void reset() noexcept {
    if (data_) {
      if (be_)
        be_->deallocate(data_);
      else
        std::free(data_);
    }
    be_ = nullptr;
    data_ = nullptr;
    bytes_ = 0;
  }

  void* data() const noexcept { return data_; }
  template <class T>
  T* as() const noexcept {
    return static_cast<T*>(data_);
  }
  std::size_t bytes() const noexcept { return bytes_; }
  /// The backend whose memory this is; null for host memory.
  backend* owner() const noexcept { return be_; }

 private:
  backend* be_ = nullptr;
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace bastion::kernels
