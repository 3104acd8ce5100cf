#pragma once
// Matrix products with weights in their stored type, dequantized inside the kernels:
// - gemv_rows: y = x W^T for a few rows of x (decode): one warp per weight row reads the row
//   once, dequantizes 8 elements at a time and multiplies every row of x with them, F32
//   accumulation. Memory-bound by design: the weights are read once per call.
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

/// out[r x w.cols] = rows row_begin .. row_begin + rows of quantized `w` (Q8_0, Q4_0, Q4_1) as F16.
status dequantize_to_f16(const weight_view& w, std::int64_t row_begin, std::int64_t rows,
                         __half* out, cudaStream_t stream);

/// out[i] = x[i] rounded to F16 (to_bf16 false) or BF16 (true), i < n. `out` holds 2n bytes.
status convert_f32(const float* x, std::int64_t n, void* out, bool to_bf16, cudaStream_t stream);

}  // namespace bastion::kernels::cuda
