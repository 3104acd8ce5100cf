// The CPU backend is the reference for every other backend, so it is checked against plain
// double-precision loops here.

#include "kernels/backend.hpp"
#include "tests/support/numeric.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

using bastion::test::normalised_error;
using bastion::test::random_vector;

namespace {}  // namespace

TEST_CASE("cpu matmul_f32 matches a double-precision reference") {
  auto be = bastion::kernels::make_cpu_backend();
  std::mt19937 rng{7};
  for (auto [m, n, k] : {std::tuple{1, 1, 1}, {3, 5, 7}, {17, 33, 64}, {64, 96, 576}}) {
    auto x = random_vector(static_cast<std::size_t>(m * k), rng);
    auto w = random_vector(static_cast<std::size_t>(n * k), rng);
    std::vector<float> y(static_cast<std::size_t>(m * n), -1.0f);
    REQUIRE(be->matmul_f32(x.data(), w.data(), y.data(), m, n, k));
    std::vector<double> ref(y.size());
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double acc = 0.0;
        for (int p = 0; p < k; ++p) acc += double{x[i * k + p]} * double{w[j * k + p]};
        ref[i * n + j] = acc;
      }
    INFO("m=" << m << " n=" << n << " k=" << k
              << " gemm=" << bastion::kernels::cpu_gemm_provider());
    CHECK(normalised_error(y, ref) < 1e-5);
  }
}

TEST_CASE("cpu rmsnorm_f32 matches a double-precision reference, in place too") {
  auto be = bastion::kernels::make_cpu_backend();
  std::mt19937 rng{11};
  const int rows = 4, dim = 576;
  auto x = random_vector(rows * dim, rng);
  auto w = random_vector(dim, rng);
  std::vector<double> ref(x.size());
  for (int r = 0; r < rows; ++r) {
    double ss = 0.0;
    for (int i = 0; i < dim; ++i) ss += double{x[r * dim + i]} * double{x[r * dim + i]};
    const double scale = 1.0 / std::sqrt(ss / dim + 1e-5);
    for (int i = 0; i < dim; ++i) ref[r * dim + i] = double{x[r * dim + i]} * scale * double{w[i]};
  }
  std::vector<float> y(x.size());
  REQUIRE(be->rmsnorm_f32(x.data(), w.data(), y.data(), rows, dim, 1e-5f));
  CHECK(normalised_error(y, ref) < 1e-6);
  REQUIRE(be->rmsnorm_f32(x.data(), w.data(), x.data(), rows, dim, 1e-5f));
  CHECK(normalised_error(x, ref) < 1e-6);
}

TEST_CASE("cpu backend refuses bad arguments with a status, not a crash") {
  auto be = bastion::kernels::make_cpu_backend();
  float a = 1.0f;
  auto s = be->matmul_f32(nullptr, &a, &a, 1, 1, 1);
  CHECK(s.code() == bastion::kernels::status_code::invalid_argument);
  CHECK_THAT(s.message(), Catch::Contains("null pointer"));
  CHECK(be->matmul_f32(&a, &a, &a, -1, 1, 1).code() ==
        bastion::kernels::status_code::invalid_argument);
  CHECK(be->rmsnorm_f32(&a, &a, &a, 1, 0, 1e-5f).code() ==
        bastion::kernels::status_code::invalid_argument);
}
