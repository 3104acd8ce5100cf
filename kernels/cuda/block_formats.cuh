#pragma once
// Device-side reading of the stored weight types (kernels/quant/tensor_type.hpp layouts), in
// units of 8 consecutive elements of a row: the grain the embedding and matmul kernels share.
// Quantized blocks hold 32 elements, i.e. 4 units:
//   Q8_0: f16 d, int8 q[32]               element j = d * q[j]
//   Q4_0: f16 d, u8 qs[16]                element j = d * (nibble - 8); byte j holds element j
//                                         (low nibble) and element j + 16 (high nibble)
//   Q4_1: f16 d, f16 m, u8 qs[16]         element j = d * nibble + m, nibbles as Q4_0
// Byte loads: blocks are 18/20/34 bytes, so their fields are not aligned for wider loads
// (the GEMV's aligned fast path is gemv_units.cuh).

#include "kernels/cuda/error_bits.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace bastion::kernels::cuda {

// ggml type numbers, as tensor_type numbers them (a device-friendly copy).
constexpr int type_f32 = 0;
constexpr int type_f16 = 1;
constexpr int type_q4_0 = 2;
constexpr int type_q4_1 = 3;
constexpr int type_q8_0 = 8;
constexpr int type_bf16 = 30;

__device__ __forceinline__ std::uint16_t load_u16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
__device__ __forceinline__ float load_f16(const std::uint8_t* p) {
  return __half2float(__ushort_as_half(load_u16(p)));
}
/// F32 rows may sit at any byte (safetensors does not align): a word load when p is aligned,
/// four byte loads when it is not.
__device__ __forceinline__ float load_f32(const std::uint8_t* p) {
  if (reinterpret_cast<std::uintptr_t>(p) % 4 == 0) return *reinterpret_cast<const float*>(p);
  return __uint_as_float(
      static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
      (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24));
}
__device__ __forceinline__ float load_bf16(const std::uint8_t* p) {
  return __uint_as_float(static_cast<std::uint32_t>(load_u16(p)) << 16);
}

/// out[0..8) = elements 8u .. 8u+7 of `row` (stored as Type).
template <int Type>
__device__ __forceinline__ void load_unit(const std::uint8_t* row, std::int64_t u, float out[8]) {
  if constexpr (Type == type_f32) {
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = load_f32(row + (u * 8 + i) * 4);
  } else if constexpr (Type == type_f16 || Type == type_bf16) {
    const std::uint8_t* p = row + u * 16;
#pragma unroll
    for (int i = 0; i < 8; ++i)
      out[i] = Type == type_f16 ? load_f16(p + 2 * i) : load_bf16(p + 2 * i);
  } else if constexpr (Type == type_q8_0) {
    const std::uint8_t* b = row + (u / 4) * 34;
    const float d = load_f16(b);
    const std::uint8_t* q = b + 2 + (u % 4) * 8;
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = d * static_cast<float>(static_cast<std::int8_t>(q[i]));
  } else {  // Q4_0, Q4_1: sub-unit s covers elements 8s..8s+7 of the block
    constexpr int block_bytes = Type == type_q4_0 ? 18 : 20;
    constexpr int qs_at = Type == type_q4_0 ? 2 : 4;
    const std::uint8_t* b = row + (u / 4) * block_bytes;
    const int s = static_cast<int>(u % 4);
    const float d = load_f16(b);
    const float m = Type == type_q4_1 ? load_f16(b + 2) : 0.0f;
    const std::uint8_t* q = b + qs_at + (s % 2) * 8;
    const int shift = s < 2 ? 0 : 4;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int nib = (q[i] >> shift) & 0x0f;
      out[i] = Type == type_q4_0 ? d * static_cast<float>(nib - 8)
                                 // unfused, as the CPU reference rounds it (nvcc would use an FMA)
                                 : __fadd_rn(__fmul_rn(d, static_cast<float>(nib)), m);
    }
  }
}

/// One element (for rows whose length is not a multiple of 8: F32/F16/BF16 only).
template <int Type>
__device__ __forceinline__ float load_element(const std::uint8_t* row, std::int64_t j) {
  if constexpr (Type == type_f32) return load_f32(row + j * 4);
  if constexpr (Type == type_f16) return load_f16(row + 2 * j);
  if constexpr (Type == type_bf16) return load_bf16(row + 2 * j);
  return 0.0f;  // quantized rows are whole blocks, never reached
}

}  // namespace bastion::kernels::cuda
