#pragma once
// Shared by the CUDA tests (plain mains, so they build with the CUDA toolkit alone): device
// discovery with a clean skip (exit 77 and the reason), buffers in a backend's memory, random
// data, weight encodings (all stored types) and the normalised error the checks bound:
// max |got - want| / max |want|.

#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/engine/backend_buffer.hpp"
#include "kernels/quant/tensor_type.hpp"
#include "tests/support/numeric.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

namespace bastion::test {

struct cuda_checks {
  int passed = 0, failed = 0;
  void check(bool ok, const std::string& what, double err = 0.0) {
    std::printf("%s %s (normalised error %.3g)\n", ok ? "PASS" : "FAIL", what.c_str(), err);
    (ok ? passed : failed)++;
  }
  int finish() const {
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
  }
};

/// The device backend on ordinal 0, or a return code: 77 (skip, reason printed) when no device
/// is usable, 1 when one exists but the backend cannot start.
inline int open_cuda(std::unique_ptr<kernels::backend>& gpu) {
  std::vector<kernels::cuda::device_info> devices;
  auto st = kernels::cuda::list_devices(devices);
  if (!st || devices.empty()) {
    std::printf("SKIP: no usable CUDA device: %s\n",
                st ? "the driver reports 0 devices" : st.message().c_str());
    return 77;
  }
  std::printf("device: %s (sm_%d%d)\n", devices[0].name.c_str(), devices[0].compute_major,
              devices[0].compute_minor);
  if (auto s = kernels::cuda::make_cuda_backend(0, gpu); !s) {
    std::printf("FAIL backend init: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}

/// A copy of host data in `be`'s memory. Aborts the test on failure (a broken device).
template <class T>
struct dev {
  kernels::backend_buffer buf;
  dev(kernels::backend& be, const std::vector<T>& host) {
    if (!kernels::backend_buffer::make(&be, std::max<std::size_t>(host.size(), 1) * sizeof(T),
                                       buf) ||
        !be.upload(buf.data(), host.data(), host.size() * sizeof(T))) {
      std::printf("FAIL device allocation/upload\n");
      std::exit(1);
    }
  }
  T* ptr() const { return buf.as<T>(); }
  std::vector<T> read(kernels::backend& be, std::size_t n) const {
    std::vector<T> out(n);
    auto s = be.download(out.data(), buf.data(), n * sizeof(T));
    if (!s) {
      std::printf("FAIL download: %s\n", s.message().c_str());
      std::exit(1);
    }
    return out;
  }
};

inline void put_u16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
  out.push_back(static_cast<std::uint8_t>(v >> 8));
}

/// `v` (a whole number of 32-blocks for quantized types) in the stored layout of `type`.
inline std::vector<std::uint8_t> encode_weights(kernels::tensor_type type,
                                                const std::vector<float>& v) {
  using kernels::tensor_type;
  std::vector<std::uint8_t> out;
  if (type == tensor_type::f32) {
    out.resize(v.size() * 4);
    std::memcpy(out.data(), v.data(), out.size());
    return out;
  }
  if (type == tensor_type::f16 || type == tensor_type::bf16) {
    for (float x : v)
      put_u16(out,
              type == tensor_type::f16 ? kernels::float_to_half(x) : kernels::float_to_bf16(x));
    return out;
  }
  for (std::size_t b = 0; b < v.size() / 32; ++b) {
    const float* x = &v[b * 32];
    float lo = x[0], hi = x[0], amax = 0.0f;
    for (int j = 0; j < 32; ++j) {
      lo = std::min(lo, x[j]);
      hi = std::max(hi, x[j]);
      amax = std::max(amax, std::abs(x[j]));
    }
    if (type == tensor_type::q8_0) {
      const float d = amax / 127.0f;
      put_u16(out, kernels::float_to_half(d));
      for (int j = 0; j < 32; ++j)
        out.push_back(static_cast<std::uint8_t>(
            static_cast<std::int8_t>(d == 0.0f ? 0.0f : std::nearbyint(x[j] / d))));
    } else if (type == tensor_type::q4_0) {
      const float d = amax / 8.0f;
      put_u16(out, kernels::float_to_half(d));
      for (int j = 0; j < 16; ++j) {
        auto q = [&](float f) {
          return std::clamp(static_cast<int>(d == 0.0f ? 8.0f : std::nearbyint(f / d) + 8), 0, 15);
        };
        out.push_back(static_cast<std::uint8_t>(q(x[j]) | (q(x[j + 16]) << 4)));
      }
    } else {  // q4_1
      const float d = (hi - lo) / 15.0f;
      put_u16(out, kernels::float_to_half(d));
      put_u16(out, kernels::float_to_half(lo));
      for (int j = 0; j < 16; ++j) {
        auto q = [&](float f) {
          return std::clamp(static_cast<int>(d == 0.0f ? 0.0f : std::nearbyint((f - lo) / d)), 0,
                            15);
        };
        out.push_back(static_cast<std::uint8_t>(q(x[j]) | (q(x[j + 16]) << 4)));
      }
    }
  }
  return out;
}

constexpr kernels::tensor_type all_weight_types[] = {
    kernels::tensor_type::f32,  kernels::tensor_type::f16,  kernels::tensor_type::bf16,
    kernels::tensor_type::q8_0, kernels::tensor_type::q4_0, kernels::tensor_type::q4_1};

inline std::string type_name(kernels::tensor_type t) {
  return std::string{kernels::ggml_type_name(static_cast<std::uint32_t>(t))};
}

}  // namespace bastion::test
