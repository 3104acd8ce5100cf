#pragma once
// The contract every execution backend implements (STYLE.md 4). The CPU backend is the
// reference: every other backend is tested against it with a normalised error bound.
//
// Layout conventions, shared by all backends:
// - Matrices are row-major. A weight matrix W of a linear layer with `n` outputs and `k`
//   inputs is stored as n rows of k values (the GGUF / PyTorch layout), so y = x * W^T.
// - Pointers point into memory the backend owns or understands (host memory for the CPU
//   backend, device memory for the CUDA backend).

#include "kernels/status.hpp"

#include <cstdint>
#include <memory>
#include <string_view>

namespace bastion::kernels {

class backend {
 public:
  virtual ~backend() = default;

  /// Short stable name for logs and metrics: "cpu", "cuda:0", ...
  virtual std::string_view name() const noexcept = 0;

  /// y[m x n] = x[m x k] * w[n x k]^T, F32.
  virtual status matmul_f32(const float* x, const float* w, float* y, std::int64_t m,
                            std::int64_t n, std::int64_t k) = 0;

  /// Per row: y = x / sqrt(mean(x^2) + eps) * weight. x and y are [rows x dim]; may alias.
  virtual status rmsnorm_f32(const float* x, const float* weight, float* y, std::int64_t rows,
                             std::int64_t dim, float eps) = 0;
};

/// The CPU backend: OpenBLAS for F32 GEMM when built with it, a blocked fallback otherwise.
std::unique_ptr<backend> make_cpu_backend();

/// Which GEMM the CPU backend uses: "openblas" or "builtin".
std::string_view cpu_gemm_provider() noexcept;

}  // namespace bastion::kernels
