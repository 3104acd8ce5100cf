// Portable kernels: plain C++ that the compiler may vectorize for the baseline instruction set
// (SSE2 on x86-64), never beyond it, so this file runs on any CPU the binary runs on.

#include "kernels/cpu/cpu_kernels.hpp"

#include <algorithm>
#include <cmath>

namespace bastion::kernels::cpu {
namespace {

std::uint16_t load_u16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}

void quantize_q8(const float* x, q8_block* out, std::int64_t n) {
  for (std::int64_t b = 0; b < n / q8_block_elems; ++b, x += q8_block_elems) {
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int i = 0; i < 32; ++i) {
      // nearbyint: half to even in the default rounding mode, as the AVX2 rounding instruction.
      const float v = std::min(127.0f, std::max(-127.0f, std::nearbyint(x[i] * id)));
      out[b].q[i] = static_cast<std::int8_t>(v);
      sum += out[b].q[i];
    }
    out[b].d = d;
    out[b].d_sum = d * static_cast<float>(sum);
  }
}

// One weight block as 32 integer values in element order plus its scale and minimum.
struct unpacked_block {
  std::int8_t v[32];
  float d;
  float m;  // Q4_1 only: w = d * v + m
};

void unpack(tensor_type type, const std::uint8_t* p, unpacked_block& u) {
  switch (type) {
    case tensor_type::q8_0:
      u.d = half_to_float(load_u16(p));
      u.m = 0.0f;
      for (int i = 0; i < 32; ++i) u.v[i] = static_cast<std::int8_t>(p[2 + i]);
      return;
    case tensor_type::q4_0:  // byte i: element i (low nibble), element i + 16 (high), offset 8
      u.d = half_to_float(load_u16(p));
      u.m = 0.0f;
      for (int i = 0; i < 16; ++i) {
        u.v[i] = static_cast<std::int8_t>((p[2 + i] & 0x0f) - 8);
        u.v[i + 16] = static_cast<std::int8_t>((p[2 + i] >> 4) - 8);
      }
      return;
    case tensor_type::q4_1:
      u.d = half_to_float(load_u16(p));
      u.m = half_to_float(load_u16(p + 2));
      for (int i = 0; i < 16; ++i) {
        u.v[i] = static_cast<std::int8_t>(p[4 + i] & 0x0f);
        u.v[i + 16] = static_cast<std::int8_t>(p[4 + i] >> 4);
      }
      return;
    default:
      return;
  }
}

// Bytes before the quantized bytes in a block (the scale, and Q4_1's minimum).
std::size_t head_bytes(tensor_type type) { return type == tensor_type::q4_1 ? 4 : 2; }

void gemm_q8(tensor_type type, const q8_block* x, std::int64_t m, std::int64_t nb,
             const std::uint8_t* w, std::size_t row_stride, std::int64_t j0, std::int64_t j1,
             float* y, std::int64_t ldy) {
  const std::size_t block_bytes = traits_of(static_cast<std::uint32_t>(type))->block_bytes;
  // Rows of x in chunks, so each weight block is unpacked once per chunk, not once per row.
  constexpr std::int64_t chunk = 16;
  float acc[chunk];
  unpacked_block u{};
  for (std::int64_t j = j0; j < j1; ++j) {
    const std::uint8_t* row = w + static_cast<std::size_t>(j) * row_stride;
    for (std::int64_t i0 = 0; i0 < m; i0 += chunk) {
      const std::int64_t rows = std::min(chunk, m - i0);
      std::fill_n(acc, rows, 0.0f);
      for (std::int64_t b = 0; b < nb; ++b) {
        unpack(type, row + static_cast<std::size_t>(b) * block_bytes, u);
        for (std::int64_t r = 0; r < rows; ++r) {
          const q8_block& xb = x[(i0 + r) * nb + b];
          int sum = 0;
          for (int e = 0; e < 32; ++e) sum += u.v[e] * xb.q[e];
          acc[r] += static_cast<float>(sum) * (u.d * xb.d) + u.m * xb.d_sum;
        }
      }
      for (std::int64_t r = 0; r < rows; ++r) y[(i0 + r) * ldy + j] = acc[r];
    }
  }
}

// a . b in a fixed order: eight interleaved partial sums, then a fixed tree.
float dot_f32(const float* a, const float* b, std::int64_t k) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::int64_t p = 0;
  for (; p + 8 <= k; p += 8)
    for (int u = 0; u < 8; ++u) acc[u] += a[p + u] * b[p + u];
  for (; p < k; ++p) acc[0] += a[p] * b[p];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

void gemm_f32(const float* x, std::int64_t m, const float* w, std::int64_t n, std::int64_t k,
              float* y, std::int64_t ldy) {
  // Blocked over outputs so a few weight rows stay in cache while every input row uses them.
  constexpr std::int64_t block_n = 16;
  for (std::int64_t j0 = 0; j0 < n; j0 += block_n) {
    const std::int64_t j1 = std::min(n, j0 + block_n);
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = j0; j < j1; ++j) y[i * ldy + j] = dot_f32(x + i * k, w + j * k, k);
  }
}

void axpy_f32(float a, const float* x, float* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void dot_rows_f32(const float* a, const float* base, const std::int64_t* offsets, std::int64_t rows,
                  std::int64_t n, float* out) {
  for (std::int64_t j = 0; j < rows; ++j) out[j] = dot_f32(a, base + offsets[j], n);
}

void axpy_rows_f32(const float* weights, const float* base, const std::int64_t* offsets,
                   std::int64_t rows, std::int64_t n, float* y) {
  for (std::int64_t j = 0; j < rows; ++j) axpy_f32(weights[j], base + offsets[j], y, n);
}

void dequantize(tensor_type type, const void* src, float* dst, std::int64_t n) {
  dequantize_row(type, src, dst, n);
}

void silu_mul_f32(const float* gate, const float* up, float* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// No gemm_q8_rows8: unpacking each block of the eight-row layout back would cost more than
// reading the stored rows, so this set reads the stored layout only and gets no repacked copy.
constexpr cpu_kernels table{"scalar",     quantize_q8,   gemm_q8,     nullptr,
                            gemm_f32,     dequantize,    dot_f32,     axpy_f32,
                            dot_rows_f32, axpy_rows_f32, silu_mul_f32};

}  // namespace

void pack_rows8(tensor_type type, const std::uint8_t* src, std::int64_t rows, std::int64_t nb,
                std::uint8_t* dst) noexcept {
  const std::size_t block_bytes = traits_of(static_cast<std::uint32_t>(type))->block_bytes;
  const std::size_t stride = block_bytes * static_cast<std::size_t>(nb);
  const std::size_t head = head_bytes(type);
  const std::int64_t grouped = rows / 8 * 8;
  for (std::int64_t g = 0; g < grouped; g += 8) {
    const std::uint8_t* in = src + static_cast<std::size_t>(g) * stride;
    std::uint8_t* out = dst + static_cast<std::size_t>(g) * stride;
    for (std::int64_t b = 0; b < nb; ++b) {
      std::uint8_t* rec = out + static_cast<std::size_t>(b) * 8 * block_bytes;
      const std::size_t at = type == tensor_type::q4_1 ? 32 : 16;
      for (std::size_t r = 0; r < 8; ++r) {
        const std::uint8_t* blk = in + r * stride + static_cast<std::size_t>(b) * block_bytes;
        rec[2 * r] = blk[0];
        rec[2 * r + 1] = blk[1];
        if (type == tensor_type::q4_1) {
          rec[16 + 2 * r] = blk[2];
          rec[16 + 2 * r + 1] = blk[3];
        }
        for (std::size_t e = 0; e < block_bytes - head; ++e)
          rec[at + 32 * (e / 4) + 4 * r + e % 4] = blk[head + e];
      }
    }
  }
  std::copy(src + static_cast<std::size_t>(grouped) * stride,
            src + static_cast<std::size_t>(rows) * stride,
            dst + static_cast<std::size_t>(grouped) * stride);
}

const cpu_kernels& scalar_kernels() noexcept { return table; }

}  // namespace bastion::kernels::cpu
