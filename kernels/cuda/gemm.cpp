#include "kernels/cuda/gemm.hpp"

#include "kernels/cuda/check.hpp"
#include "kernels/cuda/launch.hpp"
#include "kernels/cuda/quant_matmul.hpp"

#include <algorithm>
#include <limits>

namespace bastion::kernels::cuda {
namespace {

constexpr std::int64_t int_max = std::numeric_limits<int>::max();

// y[:, j0 .. j0+nt) = x * W[j0 .. j0+nt)^T with W and x both of `type` (F16 or BF16).
status gemm_ex(cublasHandle_t blas, const void* w_rows, const void* x_half, cudaDataType type,
               float* y, std::int64_t m, std::int64_t nt, std::int64_t k, std::int64_t ldy) {
  const float alpha = 1.0f, beta = 0.0f;
  BASTION_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(nt),
                                    static_cast<int>(m), static_cast<int>(k), &alpha, w_rows, type,
                                    static_cast<int>(k), x_half, type, static_cast<int>(k), &beta,
                                    y, CUDA_R_32F, static_cast<int>(ldy), CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT));
  return status::ok();
}

}  // namespace

status sgemm(cublasHandle_t blas, const float* x, const float* w, float* y, std::int64_t m,
             std::int64_t n, std::int64_t k) {
  if (!x || !w || !y) return invalid("matmul_f32", "null pointer");
  if (m < 0 || n < 0 || k < 0 || m > int_max || n > int_max || k > int_max)
    return invalid("matmul_f32", "bad shape");
  if (m == 0 || n == 0) return status::ok();
  const float alpha = 1.0f, beta = 0.0f;
  BASTION_CUBLAS_CHECK(cublasSgemm(
      blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
      &alpha, w, static_cast<int>(k), x, static_cast<int>(k), &beta, y, static_cast<int>(n)));
  return status::ok();
}

status matmul_weights(cublasHandle_t blas, cudaStream_t stream, backend& owner,
                      gemm_scratch& scratch, const float* x, const weight_view& w, float* y,
                      std::int64_t m) {
  const auto tr = traits_of(static_cast<std::uint32_t>(w.type));
  if (!tr)
    return {status_code::unsupported,
            "matmul: weight type " +
                std::string{ggml_type_name(static_cast<std::uint32_t>(w.type))} + " unsupported"};
  if (!x || !w.data || !y) return invalid("matmul", "null pointer");
  if (m < 0 || w.rows < 0 || w.cols <= 0 || w.cols % tr->block_elems != 0)
    return invalid("matmul", "weight shape " + std::to_string(w.rows) + " x " +
                                 std::to_string(w.cols) + " is not whole " + std::string{tr->name} +
                                 " blocks");
  if (m > int_max || w.rows > int_max || w.cols > int_max) return invalid("matmul", "too large");
  if (m == 0 || w.rows == 0) return status::ok();
  if (m <= gemv_rows_max) return gemv_rows(x, w, y, m, stream);
  if (w.type == tensor_type::f32)
    return sgemm(blas, x, static_cast<const float*>(w.data), y, m, w.rows, w.cols);

  const bool bf16 = w.type == tensor_type::bf16;
  const cudaDataType type = bf16 ? CUDA_R_16BF : CUDA_R_16F;
  const auto x_bytes = static_cast<std::size_t>(m * w.cols) * 2;
  if (auto s = scratch.x_half.reserve(&owner, x_bytes); !s) return s;
  if (auto s = convert_f32(x, m * w.cols, scratch.x_half.data(), bf16, stream); !s) return s;
  if (w.type == tensor_type::f16 || bf16)
    return gemm_ex(blas, w.data, scratch.x_half.data(), type, y, m, w.rows, w.cols, w.rows);

  // Quantized: F16 tiles of whole weight rows, at most dequant_tile_bytes_max at a time.
  const std::int64_t row_bytes_f16 = w.cols * 2;
  const std::int64_t tile_rows = std::clamp<std::int64_t>(
      static_cast<std::int64_t>(dequant_tile_bytes_max) / row_bytes_f16, 1, w.rows);
  if (auto s = scratch.w_half.reserve(&owner, static_cast<std::size_t>(tile_rows * row_bytes_f16));
      !s)
    return s;
  auto* tile = scratch.w_half.as<__half>();
  for (std::int64_t j0 = 0; j0 < w.rows; j0 += tile_rows) {
    const std::int64_t nt = std::min(tile_rows, w.rows - j0);
    if (auto s = dequantize_to_f16(w, j0, nt, tile, stream); !s) return s;
    if (auto s =
            gemm_ex(blas, tile, scratch.x_half.data(), CUDA_R_16F, y + j0, m, nt, w.cols, w.rows);
        !s)
      return s;
  }
  return status::ok();
}

}  // namespace bastion::kernels::cuda
