#pragma once
// The GEMV fast path's reading of one unit (8 consecutive elements) of a weight row, with the
// widest loads each stored layout allows (block_formats.cuh describes the layouts):
//   F32, F16, BF16: 16-byte loads. REQUIRES: the row starts on a 16-byte boundary.
//   Q8_0, Q4_0, Q4_1: the scale(s) as 2-byte loads and the unit's 8 quant bytes as two or three
//   aligned 4-byte loads (the blocks are 34/18/20 bytes, so the bytes sit on a 2-byte
//   boundary). REQUIRES: the row starts on a 2-byte boundary.
// A unit comes back as q[8] with element e = d * q[e] + m: the quantized types keep their
// small integers in q (made exact with the 2^23 float trick below, which costs one byte
// permute and one add per element instead of an int-to-float conversion, a quarter-rate
// instruction), so the caller multiplies by d once per unit; the float types have d = 1, m = 0.

#include "kernels/cuda/block_formats.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace bastion::kernels::cuda {

/// Whether elements of Type carry a per-unit scale (and Q4_1 an offset) the caller applies.
template <int Type>
constexpr bool unit_scaled = Type == type_q8_0 || Type == type_q4_0 || Type == type_q4_1;

__device__ __forceinline__ float ldg_f16_at(const std::uint8_t* p) {
  return __half2float(__ushort_as_half(__ldg(reinterpret_cast<const unsigned short*>(p))));
}

/// The 8 bytes at p (2-byte aligned) as two little-endian words, read as two or three aligned
/// words. Every word read holds at least one of the 8 bytes, so no read crosses into another
/// 4-byte granule than the bytes' own.
__device__ __forceinline__ uint2 load8_a2(const std::uint8_t* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  const auto* w = reinterpret_cast<const unsigned int*>(a & ~std::uintptr_t{3});
  const unsigned w0 = __ldg(w), w1 = __ldg(w + 1);
  if ((a & 3) == 0) return make_uint2(w0, w1);
  const unsigned w2 = __ldg(w + 2);
  return make_uint2(__funnelshift_r(w0, w1, 16), __funnelshift_r(w1, w2, 16));
}

/// Byte j (0..3) of w as the float 2^23 + byte, exactly: 0x4B000000 is 2^23 and the byte fills
/// the low mantissa bits. Subtracting 2^23 (plus any offset) afterwards is exact too.
__device__ __forceinline__ float magic_byte(unsigned w, unsigned j) {
  return __uint_as_float(__byte_perm(w, 0x4B00u, 0x5440u | j));
}
constexpr float magic_base = 8388608.0f;  // 2^23

/// The 8 small integers of the 8 bytes in (lo, hi), each byte first transformed by the caller.
__device__ __forceinline__ void magic_bytes(unsigned lo, unsigned hi, float offset, float q[8]) {
#pragma unroll
  for (unsigned j = 0; j < 4; ++j) {
    q[j] = magic_byte(lo, j) - offset;
    q[j + 4] = magic_byte(hi, j) - offset;
  }
}

/// Unit u of `row` (stored as Type; u is 32-bit: rows are under 2^31 elements): q[0..8), scale d
/// and offset m (element e = d * q[e] + m).
template <int Type>
__device__ __forceinline__ void load_unit_fast(const std::uint8_t* row, int u, float q[8], float& d,
                                               float& m) {
  d = 1.0f;
  m = 0.0f;
  if constexpr (Type == type_f32) {
    const auto* f = reinterpret_cast<const float4*>(row) + u * 2;
    const float4 a = __ldg(f), b = __ldg(f + 1);
    q[0] = a.x, q[1] = a.y, q[2] = a.z, q[3] = a.w, q[4] = b.x, q[5] = b.y, q[6] = b.z, q[7] = b.w;
  } else if constexpr (Type == type_f16 || Type == type_bf16) {
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(row) + u);
    const unsigned words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if constexpr (Type == type_f16) {
        q[2 * i] = __half2float(__ushort_as_half(static_cast<unsigned short>(words[i] & 0xffffu)));
        q[2 * i + 1] = __half2float(__ushort_as_half(static_cast<unsigned short>(words[i] >> 16)));
      } else {
        q[2 * i] = __uint_as_float(words[i] << 16);
        q[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
      }
    }
  } else if constexpr (Type == type_q8_0) {
    const std::uint8_t* b = row + (u >> 2) * 34;
    d = ldg_f16_at(b);
    const uint2 v = load8_a2(b + 2 + (u & 3) * 8);
    // int8 + 128 is the byte with its top bit flipped: 2^23 + q + 128 - (2^23 + 128) = q.
    magic_bytes(v.x ^ 0x80808080u, v.y ^ 0x80808080u, magic_base + 128.0f, q);
  } else {  // Q4_0, Q4_1: sub-unit s takes the low nibbles (s < 2) or high nibbles of 8 bytes
    constexpr int block_bytes = Type == type_q4_0 ? 18 : 20;
    constexpr int qs_at = Type == type_q4_0 ? 2 : 4;
    const std::uint8_t* b = row + (u >> 2) * block_bytes;
    const int s = u & 3;
    d = ldg_f16_at(b);
    if constexpr (Type == type_q4_1) m = ldg_f16_at(b + 2);
    const uint2 v = load8_a2(b + qs_at + (s % 2) * 8);
    const int shift = s < 2 ? 0 : 4;
    magic_bytes((v.x >> shift) & 0x0f0f0f0fu, (v.y >> shift) & 0x0f0f0f0fu,
                Type == type_q4_0 ? magic_base + 8.0f : magic_base, q);
  }
}

}  // namespace bastion::kernels::cuda
