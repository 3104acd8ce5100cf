#include "kernels/backend.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#ifdef BASTION_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace bastion::kernels {
namespace {

status check_shape(const void* a, const void* b, const void* c, std::int64_t m, std::int64_t n,
                   std::int64_t k, const char* op) {
  if (!a || !b || !c) return {status_code::invalid_argument, std::string{op} + ": null pointer"};
  if (m < 0 || n < 0 || k < 0)
    return {status_code::invalid_argument,
            std::string{op} + ": negative dimension (m=" + std::to_string(m) +
                ", n=" + std::to_string(n) + ", k=" + std::to_string(k) + ")"};
  return status::ok();
}

#ifndef BASTION_HAVE_OPENBLAS
// Blocked over outputs so one weight row stays in cache while every input row uses it.
void gemm_builtin(const float* x, const float* w, float* y, std::int64_t m, std::int64_t n,
                  std::int64_t k) {
  constexpr std::int64_t block_n = 16;
  for (std::int64_t j0 = 0; j0 < n; j0 += block_n) {
    const std::int64_t j1 = std::min(n, j0 + block_n);
    for (std::int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * k;
      for (std::int64_t j = j0; j < j1; ++j) {
        const float* wj = w + j * k;
        float acc = 0.0f;
        for (std::int64_t p = 0; p < k; ++p) acc += xi[p] * wj[p];
        y[i * n + j] = acc;
      }
    }
  }
}
#endif

class cpu_backend final : public backend {
 public:
  std::string_view name() const noexcept override { return "cpu"; }

  status matmul_f32(const float* x, const float* w, float* y, std::int64_t m, std::int64_t n,
                    std::int64_t k) override {
    if (auto s = check_shape(x, w, y, m, n, k, "matmul_f32"); !s) return s;
    if (m == 0 || n == 0) return status::ok();
#ifdef BASTION_HAVE_OPENBLAS
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m),
                static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, x, static_cast<blasint>(k),
                w, static_cast<blasint>(k), 0.0f, y, static_cast<blasint>(n));
#else
    gemm_builtin(x, w, y, m, n, k);
#endif
    return status::ok();
  }

  status rmsnorm_f32(const float* x, const float* weight, float* y, std::int64_t rows,
                     std::int64_t dim, float eps) override {
    if (auto s = check_shape(x, weight, y, rows, dim, 1, "rmsnorm_f32"); !s) return s;
    if (dim == 0) return {status_code::invalid_argument, "rmsnorm_f32: dim is 0"};
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * dim;
      float* yr = y + r * dim;
      double sum_sq = 0.0;  // double: long rows of large activations lose precision in float
      for (std::int64_t i = 0; i < dim; ++i)
        sum_sq += static_cast<double>(xr[i]) * static_cast<double>(xr[i]);
      const float scale = static_cast<float>(
          1.0 / std::sqrt(sum_sq / static_cast<double>(dim) + static_cast<double>(eps)));
      for (std::int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * scale * weight[i];
    }
    return status::ok();
  }
};

}  // namespace

std::unique_ptr<backend> make_cpu_backend() { return std::make_unique<cpu_backend>(); }

std::string_view cpu_gemm_provider() noexcept {
#ifdef BASTION_HAVE_OPENBLAS
  return "openblas";
#else
  return "builtin";
#endif
}

}  // namespace bastion::kernels
