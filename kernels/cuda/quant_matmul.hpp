#pragma once
// Matrix products with weights in their stored type, dequantized inside the kernels:
// - gemv_rows: y = x W^T for a few rows of x (decode): each warp reads one or two weight rows
//   once with 16-byte (float types) or aligned 4-byte (quant blocks) loads, 8 elements per
//   lane per unit, several units in flight, and multiplies every row of x with them, F32
//   accumulation (gemv_units.cuh). Unaligned x or rows take a byte-load kernel. The weights
//   are read once per call; on an H200 F16 reaches 0.9 of memcpy bandwidth, Q8_0 0.53, the
//   4-bit formats under 0.3 (their per-element unpacking instructions bound them there).
// - dequantize_to_f16: whole blocks of weight rows as F16, for tensor-core GEMM (prefill).
// - convert_f32: activations to F16 or BF16 for the same GEMMs.

#include "kernels/backend.hpp"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace bastion::kernels::cuda {

/// Most rows of x gemv_rows takes in one call.
constexpr std::int64_t gemv_rows_max = 8;

/// y[m x w.rows] = x[m x w.cols] * W^T, 0 < m <= gemv_rows_max; device pointers.
status gemv_rows(const float* x, const weight_view& w, float* y, std::int64_t m,
                 cudaStream_t stream);

/// The GEMV's wide-load variants (rows per warp R, units per lane step B, lane steps unrolled
/// U, for m = 1), for the benchmark's sweep and the tests; -1 is the byte-load kernel, which
/// also serves whatever the wide loads cannot (unaligned x or rows, rows not whole units).
constexpr int gemv_variants = 5;
constexpr const char* gemv_variant_names[gemv_variants] = {"R2 B1 U4", "R4 B1 U2", "R2 B4 U1",
                                                           "R1 B4 U2", "R1 B1 U4"};
/// The variant gemv_rows uses for `type` and m rows of x (chosen from the H200 sweep,
/// bench/cuda_kernels_bench; the figures are beside the choice in quant_matmul.cu).
int gemv_default_variant(tensor_type type, std::int64_t m);
/// gemv_rows with a chosen variant, -1 .. gemv_variants - 1.
status gemv_rows_variant(const float* x, const weight_view& w, float* y, std::int64_t m,
                         int variant, cudaStream_t stream);

/// out[r x w.cols] = rows row_begin .. row_begin + rows of quantized `w` (Q8_0, Q4_0, Q4_1) as F16.
status dequantize_to_f16(const weight_view& w, std::int64_t row_begin, std::int64_t rows,
                         __half* out, cudaStream_t stream);

/// out[i] = x[i] rounded to F16 (to_bf16 false) or BF16 (true), i < n. `out` holds 2n bytes.
status convert_f32(const float* x, std::int64_t n, void* out, bool to_bf16, cudaStream_t stream);

}  // namespace bastion::kernels::cuda
