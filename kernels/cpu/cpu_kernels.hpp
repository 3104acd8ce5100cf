#pragma once
// The inner loops of the CPU backend, as a table of functions with one implementation per
// instruction set: scalar (any x86-64 or other CPU) and AVX2+FMA+F16C (cpu_kernels_avx2.cpp,
// the only file compiled with -mavx2, chosen at run time). The backend splits work between
// threads; these functions are single-threaded and allocate nothing.
//
// Determinism contract, for every function here: output element (i, j) is computed by the
// same sequence of operations whatever m, the range [j0, j1) (for gemm_q8 and gemm_q8_rows8:
// ranges whose ends are multiples of gemm_q8_row_align, or n for the last one) or the tiling,
// so a row gets the same bits whether it is computed alone, in a batch, or by another thread.
// (The AVX2 and scalar tables round differently: each is deterministic, they agree within
// float rounding, not bit for bit.)

#include "kernels/quant/tensor_type.hpp"

#include <cstddef>
#include <cstdint>

namespace bastion::kernels::cpu {

/// 32 activations quantized to 8 bits: x[i] ~ d * q[i], with |q[i]| <= 127 (so the signed x
/// unsigned byte products of the AVX2 kernels never saturate).
struct q8_block {
  float d = 0.0f;
  float d_sum = 0.0f;  // d * sum(q): what Q4_1's per-block minimum multiplies
  std::int8_t q[32] = {};
};
static_assert(sizeof(q8_block) == 40, "q8_block is packed as 2 floats and 32 bytes");

constexpr std::int64_t q8_block_elems = 32;

/// gemm_q8 output ranges begin and end at multiples of this, but for the matrix's last row (the
/// AVX2 kernels take weight rows eight at a time from j0; a row's bits would depend on the
/// range otherwise).
constexpr std::int64_t gemm_q8_row_align = 8;

struct cpu_kernels {
  const char* name;

  /// Quantizes n floats (n a multiple of 32) into n / 32 blocks. Rounds half to even, so
  /// every implementation produces the same blocks.
  void (*quantize_q8)(const float* x, q8_block* out, std::int64_t n);

  /// y[i * ldy + j] = x_i . w_j for i < m and j0 <= j < j1, with integer block products.
  /// x: m rows of nb blocks each; w: weight rows of `type` (Q8_0, Q4_0 or Q4_1), row j at
  /// w + j * row_stride, nb blocks each. REQUIRES: type is one of the three; j0 is a multiple
  /// of gemm_q8_row_align, and so is j1 unless it is the matrix's row count.
  void (*gemm_q8)(tensor_type type, const q8_block* x, std::int64_t m, std::int64_t nb,
                  const std::uint8_t* w, std::size_t row_stride, std::int64_t j0, std::int64_t j1,
                  float* y, std::int64_t ldy);

  /// gemm_q8 with w in the eight-row layout of pack_rows8 (row_stride: the stored layout's),
  /// with the same results bit for bit. REQUIRES: as gemm_q8. Null in a set that reads only
  /// the stored layout (scalar: it would unpack every block back, so a copy in this layout
  /// would cost memory and gain nothing); the backend then makes no such copy.
  void (*gemm_q8_rows8)(tensor_type type, const q8_block* x, std::int64_t m, std::int64_t nb,
                        const std::uint8_t* w, std::size_t row_stride, std::int64_t j0,
                        std::int64_t j1, float* y, std::int64_t ldy);

  /// y[i * ldy + j] = x_i . w_j for i < m, j < n, F32: x is [m x k], w is [n x k] (rows of w may
  /// be unaligned).
  void (*gemm_f32)(const float* x, std::int64_t m, const float* w, std::int64_t n, std::int64_t k,
                   float* y, std::int64_t ldy);

  /// dequantize_row (tensor_type.hpp) for every type, faster where the instruction set helps.
  void (*dequantize)(tensor_type type, const void* src, float* dst, std::int64_t n);

  /// a . b over n floats.
  float (*dot_f32)(const float* a, const float* b, std::int64_t n);

  /// y += a * x over n floats.
  void (*axpy_f32)(float a, const float* x, float* y, std::int64_t n);

  /// out[j] = a . (base + offsets[j]) over n floats, j < rows (attention scores).
  void (*dot_rows_f32)(const float* a, const float* base, const std::int64_t* offsets,
                       std::int64_t rows, std::int64_t n, float* out);

  /// y += sum over j < rows, in order, of weights[j] * (base + offsets[j]), n floats (attention
  /// output).
  void (*axpy_rows_f32)(const float* weights, const float* base, const std::int64_t* offsets,
                        std::int64_t rows, std::int64_t n, float* y);

  /// out[i] = gate[i] * sigmoid(gate[i]) * up[i] over n floats (the MLP's SwiGLU product);
  /// out may be gate or up. Within a few float ulps of the exact value (the AVX2 exponential
  /// is a polynomial), element by element, so any split of the range gives the same bits.
  void (*silu_mul_f32)(const float* gate, const float* up, float* out, std::int64_t n);
};

/// Copies a Q8_0, Q4_0 or Q4_1 matrix of `rows` rows of nb blocks (row_stride bytes each,
/// back to back) into the eight-row layout that gemm_q8_rows8 reads as one stream (portable
/// code, used where the active set has gemm_q8_rows8), the same
/// size: rows [0, n8), n8 = rows / 8 * 8, in groups of eight, group g in the 8 * row_stride
/// bytes where its rows were; the last rows % 8 rows as stored (so row j >= n8 is at
/// j * row_stride). In a group, block b's eight blocks become one record of 8 * block bytes:
/// the eight F16 scales, then (Q4_1) the eight F16 minima, then the quantized bytes by 32-bit
/// words, word t of rows 0..7 at 32 * t + 4 * r (Q4: t < 4, the packed nibbles; Q8_0: t < 8).
/// REQUIRES: type is one of the three; dst does not overlap src.
void pack_rows8(tensor_type type, const std::uint8_t* src, std::int64_t rows, std::int64_t nb,
                std::uint8_t* dst) noexcept;

/// The portable implementation.
const cpu_kernels& scalar_kernels() noexcept;

/// The AVX2+FMA+F16C implementation. REQUIRES: avx2_supported(); calling its functions on a
/// CPU without these instructions faults.
const cpu_kernels& avx2_kernels() noexcept;

/// Whether this CPU (and OS) can run avx2_kernels().
bool avx2_supported() noexcept;

}  // namespace bastion::kernels::cpu
