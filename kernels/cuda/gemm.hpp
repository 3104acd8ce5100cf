#pragma once
// Matrix products through cuBLAS, row-major as the backend contract has them:
// y[m x n] = x[m x k] * W[n x k]^T, which is column-major y^T = W x^T (W "transposed").
// - F32 weights: cublasSgemm (no TF32: results stay comparable with the CPU reference).
// - F16 / BF16 weights: cublasGemmEx on the tensor cores with F32 accumulation
//   (CUBLAS_COMPUTE_32F); x is rounded to the weight's type first.
// - Q8_0 / Q4_0 / Q4_1: decode-sized m goes to the dequantizing GEMV (quant_matmul.hpp); larger
//   m dequantizes tiles of weight rows to F16 in a bounded scratch and runs GemmEx on them.

#include "kernels/backend.hpp"
#include "kernels/engine/backend_buffer.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace bastion::kernels::cuda {

/// Bound on the F16 weight tile the quantized GEMM path dequantizes at once.
constexpr std::size_t dequant_tile_bytes_max = std::size_t{256} << 20;

/// Scratch the GEMMs reuse between calls, in the owning backend's memory.
struct gemm_scratch {
  backend_buffer x_half;  // x rounded to F16/BF16
  backend_buffer w_half;  // a tile of dequantized weight rows
};

/// y = x w^T, F32 everything, device pointers.
status sgemm(cublasHandle_t blas, const float* x, const float* w, float* y, std::int64_t m,
             std::int64_t n, std::int64_t k);

/// y = x W^T with W in its stored type; device pointers. `owner` allocates the scratch.
status matmul_weights(cublasHandle_t blas, cudaStream_t stream, backend& owner,
                      gemm_scratch& scratch, const float* x, const weight_view& w, float* y,
                      std::int64_t m);

}  // namespace bastion::kernels::cuda
