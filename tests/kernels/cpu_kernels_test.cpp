// The CPU kernel tables (kernels/cpu/cpu_kernels.hpp), scalar and AVX2, against plain double
// loops; and the two tables against each other. AVX2 cases are skipped, with a message, on a
// CPU without AVX2/FMA/F16C.

#include "kernels/cpu/cpu_kernels.hpp"
#include "tests/support/numeric.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

using namespace bastion::kernels;
using bastion::kernels::cpu::q8_block;

using bastion::test::normalised_error;
using bastion::test::random_vector;

namespace {

std::vector<const cpu::cpu_kernels*> kernel_sets() {
  std::vector<const cpu::cpu_kernels*> sets{&cpu::scalar_kernels()};
  if (cpu::avx2_supported())
    sets.push_back(&cpu::avx2_kernels());
  else
    WARN("this CPU lacks AVX2/FMA/F16C: only the scalar kernels are checked");
  return sets;
}

std::vector<float> random_floats(std::size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist{0.0f, scale};
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// A matrix of n x k in `type` with random blocks: scales in a realistic range, random values.
std::vector<std::uint8_t> random_matrix(tensor_type type, std::int64_t n, std::int64_t k,
                                        std::mt19937& rng) {
  const auto bytes = *row_bytes(type, static_cast<std::uint64_t>(n * k));
  std::vector<std::uint8_t> out(bytes);
  for (auto& b : out) b = static_cast<std::uint8_t>(rng());
  const auto tr = *traits_of(static_cast<std::uint32_t>(type));
  std::uniform_real_distribution<float> scale{0.001f, 0.05f};
  if (tr.block_elems == 32)
    for (std::size_t off = 0; off < out.size(); off += tr.block_bytes) {
      const auto d = float_to_half(scale(rng)), mn = float_to_half(-scale(rng) * 8.0f);
      std::memcpy(out.data() + off, &d, 2);
      if (type == tensor_type::q4_1) std::memcpy(out.data() + off + 2, &mn, 2);
    }
  return out;
}

std::vector<float> dequantized(tensor_type type, const std::vector<std::uint8_t>& bytes,
                               std::int64_t n) {
  std::vector<float> f(static_cast<std::size_t>(n));
  dequantize_row(type, bytes.data(), f.data(), n);
  return f;
}

// y = x w^T in double from F32 x [m x k] and F32 w [n x k].
std::vector<double> reference_product(const std::vector<float>& x, const std::vector<float>& w,
                                      std::int64_t m, std::int64_t n, std::int64_t k) {
  std::vector<double> y(static_cast<std::size_t>(m * n));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (std::int64_t p = 0; p < k; ++p)
        acc += double{x[static_cast<std::size_t>(i * k + p)]} *
               double{w[static_cast<std::size_t>(j * k + p)]};
      y[static_cast<std::size_t>(i * n + j)] = acc;
    }
  return y;
}

// The activations exactly as the integer kernels see them: q8 blocks back to F32.
std::vector<float> q8_as_floats(const std::vector<q8_block>& blocks) {
  std::vector<float> f;
  for (const auto& b : blocks)
    for (int i = 0; i < 32; ++i) f.push_back(b.d * static_cast<float>(b.q[i]));
  return f;
}

}  // namespace

TEST_CASE("activation quantization: 8-bit blocks within half a step, same bytes on every path") {
  std::mt19937 rng{11};
  auto x = random_floats(32 * 9, rng, 3.0f);
  for (int i = 0; i < 32; ++i) x[32 + static_cast<std::size_t>(i)] = 0.0f;  // a block of zeros
  x[70] = 1e-30f;                                                           // a tiny value
  std::vector<std::vector<q8_block>> results;
  for (const auto* k : kernel_sets()) {
    std::vector<q8_block> q(9);
    k->quantize_q8(x.data(), q.data(), static_cast<std::int64_t>(x.size()));
    for (std::size_t b = 0; b < q.size(); ++b) {
      int sum = 0;
      for (int i = 0; i < 32; ++i) {
        const float v = x[b * 32 + static_cast<std::size_t>(i)];
        INFO(k->name << " block " << b << " element " << i);
        CHECK(std::abs(q[b].q[i]) <= 127);
        CHECK(std::abs(q[b].d * static_cast<float>(q[b].q[i]) - v) <= 0.5f * q[b].d + 1e-30f);
        sum += q[b].q[i];
      }
      CHECK(q[b].d_sum == Approx(q[b].d * static_cast<float>(sum)));
    }
    CHECK(q[1].d == 0.0f);
    results.push_back(q);
  }
  if (results.size() == 2)
    CHECK(std::memcmp(results[0].data(), results[1].data(), results[0].size() * sizeof(q8_block)) ==
          0);
}

TEST_CASE("integer matmul equals the exact product of the quantized operands") {
  // The kernels' only approximation is the activation quantization (checked above); given the
  // quantized activations, the integer block products are exact up to float accumulation.
  std::mt19937 rng{12};
  for (const auto* kern : kernel_sets())
    for (auto type : {tensor_type::q8_0, tensor_type::q4_0, tensor_type::q4_1})
      for (auto [m, n, k] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{1, 1, 32},
                             {1, 9, 96},
                             {2, 4, 64},
                             {3, 70, 576},
                             {17, 13, 160},
                             {70, 5, 32}}) {
        const auto w = random_matrix(type, n, k, rng);
        const auto x = random_floats(static_cast<std::size_t>(m * k), rng);
        const std::int64_t nb = k / 32;
        std::vector<q8_block> xq(static_cast<std::size_t>(m * nb));
        kern->quantize_q8(x.data(), xq.data(), m * k);
        std::vector<float> y(static_cast<std::size_t>(m * n), -7.0f);
        kern->gemm_q8(type, xq.data(), m, nb, w.data(),
                      *row_bytes(type, static_cast<std::uint64_t>(k)), 0, n, y.data(), n);
        const auto ref = reference_product(q8_as_floats(xq), dequantized(type, w, n * k), m, n, k);
        INFO(kern->name << " " << traits_of(static_cast<std::uint32_t>(type))->name << " m=" << m
                        << " n=" << n << " k=" << k);
        CHECK(normalised_error(y, ref) < 1e-5);
        // Against the unquantized activations: each activation moved by at most half its
        // block's step d, so |y - exact| <= sum over blocks of d / 2 * sum |w| (plus rounding).
        const auto wf = dequantized(type, w, n * k);
        const auto exact = reference_product(x, wf, m, n, k);
        for (std::int64_t i = 0; i < m; ++i)
          for (std::int64_t j = 0; j < n; ++j) {
            double bound = 1e-4;
            for (std::int64_t p = 0; p < k; ++p)
              bound += 0.5 * double{xq[static_cast<std::size_t>(i * nb + p / 32)].d} *
                       std::abs(double{wf[static_cast<std::size_t>(j * k + p)]});
            const auto at = static_cast<std::size_t>(i * n + j);
            CHECK(std::abs(double{y[at]} - exact[at]) <= bound);
          }
      }
}

TEST_CASE("integer matmul: extreme bytes do not saturate the 16-bit pair sums") {
  // Q8_0 weights of -128 (a file may hold them) against activations at +-127.
  std::mt19937 rng{13};
  const std::int64_t n = 5, k = 64, m = 3;
  auto w = random_matrix(tensor_type::q8_0, n, k, rng);
  for (std::size_t off = 0; off < w.size(); off += 34)
    for (int i = 0; i < 32; ++i) w[off + 2 + static_cast<std::size_t>(i)] = 0x80;  // -128
  std::vector<float> x(static_cast<std::size_t>(m * k));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = (i % 3 == 0) ? -4.0f : 4.0f;
  for (const auto* kern : kernel_sets()) {
    std::vector<q8_block> xq(static_cast<std::size_t>(m * k / 32));
    kern->quantize_q8(x.data(), xq.data(), m * k);
    std::vector<float> y(static_cast<std::size_t>(m * n));
    kern->gemm_q8(tensor_type::q8_0, xq.data(), m, k / 32, w.data(), 34 * 2, 0, n, y.data(), n);
    const auto ref =
        reference_product(q8_as_floats(xq), dequantized(tensor_type::q8_0, w, n * k), m, n, k);
    INFO(kern->name);
    CHECK(normalised_error(y, ref) < 1e-6);
  }
}

TEST_CASE("integer matmul: a row's bits do not depend on the batch or the output range") {
  std::mt19937 rng{14};
  const std::int64_t n = 23, k = 96, m = 9, nb = 3;
  for (const auto* kern : kernel_sets())
    for (auto type : {tensor_type::q8_0, tensor_type::q4_0, tensor_type::q4_1}) {
      const auto w = random_matrix(type, n, k, rng);
      const std::size_t stride = *row_bytes(type, static_cast<std::uint64_t>(k));
      const auto x = random_floats(static_cast<std::size_t>(m * k), rng);
      std::vector<q8_block> xq(static_cast<std::size_t>(m * nb));
      kern->quantize_q8(x.data(), xq.data(), m * k);
      std::vector<float> all(static_cast<std::size_t>(m * n)),
          part(static_cast<std::size_t>(m * n));
      kern->gemm_q8(type, xq.data(), m, nb, w.data(), stride, 0, n, all.data(), n);
      // Each row alone, and the outputs in ranges as the backend splits them: aligned, the last
      // one ending at n (a ragged tail of 7 rows).
      static_assert(cpu::gemm_q8_row_align == 8, "ranges below assume 8");
      for (std::int64_t i = 0; i < m; ++i)
        for (auto [j0, j1] : {std::pair<std::int64_t, std::int64_t>{0, 8}, {8, 16}, {16, 23}})
          kern->gemm_q8(type, xq.data() + i * nb, 1, nb, w.data(), stride, j0, j1,
                        part.data() + i * n, n);
      INFO(kern->name << " " << traits_of(static_cast<std::uint32_t>(type))->name);
      CHECK(all == part);
    }
}

TEST_CASE("F32 kernels match double loops; dequantization is identical on every path") {
  std::mt19937 rng{15};
  std::vector<std::vector<float>> dequant_results;
  for (const auto* kern : kernel_sets()) {
    for (auto [m, n, k] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{1, 1, 1},
                           {3, 5, 7},
                           {2, 9, 33},
                           {5, 13, 576}}) {
      const auto x = random_floats(static_cast<std::size_t>(m * k), rng);
      const auto w = random_floats(static_cast<std::size_t>(n * k), rng);
      std::vector<float> y(static_cast<std::size_t>(m * n));
      kern->gemm_f32(x.data(), m, w.data(), n, k, y.data(), n);
      INFO(kern->name << " m=" << m << " n=" << n << " k=" << k);
      CHECK(normalised_error(y, reference_product(x, w, m, n, k)) < 1e-5);
      std::vector<double> d(static_cast<std::size_t>(n));
      std::vector<float> dots(static_cast<std::size_t>(n));
      for (std::int64_t j = 0; j < n; ++j) {
        dots[static_cast<std::size_t>(j)] = kern->dot_f32(x.data(), w.data() + j * k, k);
        for (std::int64_t p = 0; p < k; ++p)
          d[static_cast<std::size_t>(j)] += double{x[static_cast<std::size_t>(p)]} *
                                            double{w[static_cast<std::size_t>(j * k + p)]};
      }
      CHECK(normalised_error(dots, d) < 1e-5);
      std::vector<float> acc(static_cast<std::size_t>(k), 1.0f);
      kern->axpy_f32(0.5f, x.data(), acc.data(), k);
      for (std::int64_t p = 0; p < k; ++p)
        CHECK(acc[static_cast<std::size_t>(p)] ==
              Approx(1.0f + 0.5f * x[static_cast<std::size_t>(p)]));
    }
    std::vector<float> all;
    std::mt19937 same_bytes{16};  // the same matrices for every kernel set
    for (auto type : {tensor_type::f32, tensor_type::f16, tensor_type::bf16, tensor_type::q8_0,
                      tensor_type::q4_0, tensor_type::q4_1}) {
      const std::int64_t n = 96;
      const auto bytes =
          type == tensor_type::f32 || type == tensor_type::f16 || type == tensor_type::bf16
              ? std::vector<std::uint8_t>(*row_bytes(type, n), 0x3c)
              : random_matrix(type, 1, n, same_bytes);
      std::vector<float> out(static_cast<std::size_t>(n));
      kern->dequantize(type, bytes.data(), out.data(), n);
      INFO(kern->name << " dequantize " << traits_of(static_cast<std::uint32_t>(type))->name);
      CHECK(out == dequantized(type, bytes, n));
      all.insert(all.end(), out.begin(), out.end());
    }
    dequant_results.push_back(all);
  }
  if (dequant_results.size() == 2) CHECK(dequant_results[0] == dequant_results[1]);
}

TEST_CASE("attention row kernels: scores and weighted sums over scattered rows") {
  std::mt19937 rng{17};
  for (const auto* kern : kernel_sets())
    for (std::int64_t n : {64, 7, 128}) {  // 64: the register-resident AVX2 path
      const std::int64_t pool_rows = 40, stride = n + 5, rows = 13;
      const auto pool = random_floats(static_cast<std::size_t>(pool_rows * stride), rng);
      const auto a = random_floats(static_cast<std::size_t>(n), rng);
      const auto weights = random_floats(static_cast<std::size_t>(rows), rng);
      std::vector<std::int64_t> offsets;
      for (std::int64_t j = 0; j < rows; ++j) offsets.push_back(((j * 7) % pool_rows) * stride);
      std::vector<float> scores(static_cast<std::size_t>(rows));
      kern->dot_rows_f32(a.data(), pool.data(), offsets.data(), rows, n, scores.data());
      std::vector<float> y(static_cast<std::size_t>(n), 0.25f);
      kern->axpy_rows_f32(weights.data(), pool.data(), offsets.data(), rows, n, y.data());
      std::vector<double> want_scores(static_cast<std::size_t>(rows)),
          want_y(static_cast<std::size_t>(n), 0.25);
      for (std::int64_t j = 0; j < rows; ++j)
        for (std::int64_t p = 0; p < n; ++p) {
          const double v = pool[static_cast<std::size_t>(offsets[static_cast<std::size_t>(j)] + p)];
          want_scores[static_cast<std::size_t>(j)] += double{a[static_cast<std::size_t>(p)]} * v;
          want_y[static_cast<std::size_t>(p)] += double{weights[static_cast<std::size_t>(j)]} * v;
        }
      INFO(kern->name << " n=" << n);
      CHECK(normalised_error(scores, want_scores) < 1e-5);
      CHECK(normalised_error(y, want_y) < 1e-5);
    }
}

namespace {

// Block b of row j of an n-row matrix in pack_rows8's layout, read back by the rule that
// cpu_kernels.hpp states for it (independent of any kernel): rows in whole groups of eight have
// their blocks in records of the group's eight scales, then (Q4_1) minima, then the quantized
// bytes by 32-bit words, word t of row r at 32 * t + 4 * r; the ragged tail is as stored.
std::vector<std::uint8_t> block_from_rows8(tensor_type type,
                                           const std::vector<std::uint8_t>& packed, std::int64_t n,
                                           std::int64_t nb, std::int64_t j, std::int64_t b) {
  const std::size_t block = traits_of(static_cast<std::uint32_t>(type))->block_bytes;
  const std::size_t stride = block * static_cast<std::size_t>(nb);
  const auto at = [](std::int64_t v) { return static_cast<std::size_t>(v); };
  if (j >= n / 8 * 8) {
    const auto* p = packed.data() + at(j) * stride + at(b) * block;
    return {p, p + block};
  }
  const std::uint8_t* rec = packed.data() + at(j / 8 * 8) * stride + at(b) * 8 * block;
  const std::size_t r = at(j % 8), head = type == tensor_type::q4_1 ? 4 : 2;
  std::uint8_t out[34] = {};  // the largest of the three blocks (Q8_0)
  REQUIRE(block <= sizeof(out));
  out[0] = rec[2 * r];
  out[1] = rec[2 * r + 1];
  std::size_t words = 16;
  if (type == tensor_type::q4_1) {
    out[2] = rec[16 + 2 * r];
    out[3] = rec[16 + 2 * r + 1];
    words = 32;
  }
  for (std::size_t e = 0; e < block - head; ++e)
    out[head + e] = rec[words + 32 * (e / 4) + 4 * r + e % 4];
  return {out, out + block};
}

}  // namespace

TEST_CASE("eight-row layout: pack_rows8 puts every byte where the layout says") {
  std::mt19937 rng{19};
  const std::int64_t k = 96, nb = 3;
  for (auto type : {tensor_type::q8_0, tensor_type::q4_0, tensor_type::q4_1})
    for (std::int64_t n : {8, 23, 40, 3}) {  // whole groups, a ragged tail, no group at all
      const auto w = random_matrix(type, n, k, rng);
      const std::size_t block = traits_of(static_cast<std::uint32_t>(type))->block_bytes;
      std::vector<std::uint8_t> packed(w.size(), 0xa5);
      cpu::pack_rows8(type, w.data(), n, nb, packed.data());
      if (n >= 8) CHECK(packed != w);  // really another layout
      INFO(traits_of(static_cast<std::uint32_t>(type))->name << " n=" << n);
      int wrong = 0;
      for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t b = 0; b < nb; ++b) {
          const auto* stored = w.data() + static_cast<std::size_t>(j * nb + b) * block;
          wrong += block_from_rows8(type, packed, n, nb, j, b) !=
                   std::vector<std::uint8_t>(stored, stored + block);
        }
      CHECK(wrong == 0);
    }
}

TEST_CASE("eight-row layout: only the AVX2 set reads it, with the bits of the stored layout") {
  // The scalar set would unpack every block back: it has no eight-row kernel (and the backend
  // makes no copy for it, cpu_backend_options_test).
  CHECK(cpu::scalar_kernels().gemm_q8_rows8 == nullptr);
  if (!cpu::avx2_supported()) {
    WARN("this CPU lacks AVX2/FMA/F16C: the eight-row kernel is not checked");
    return;
  }
  const cpu::cpu_kernels& kern = cpu::avx2_kernels();
  REQUIRE(kern.gemm_q8_rows8 != nullptr);
  std::mt19937 rng{18};
  const std::int64_t k = 96, nb = 3;
  for (auto type : {tensor_type::q8_0, tensor_type::q4_0, tensor_type::q4_1})
    for (std::int64_t n : {8, 23, 40, 3}) {  // whole groups, a ragged tail, no group at all
      const auto w = random_matrix(type, n, k, rng);
      const std::size_t stride = *row_bytes(type, static_cast<std::uint64_t>(k));
      std::vector<std::uint8_t> packed(w.size(), 0xa5);
      cpu::pack_rows8(type, w.data(), n, nb, packed.data());
      for (std::int64_t m : {1, 4, 16, 21}) {
        const auto x = random_floats(static_cast<std::size_t>(m * k), rng);
        std::vector<q8_block> xq(static_cast<std::size_t>(m * nb));
        kern.quantize_q8(x.data(), xq.data(), m * k);
        std::vector<float> stored(static_cast<std::size_t>(m * n), -1.0f),
            rows8(static_cast<std::size_t>(m * n), -2.0f);
        kern.gemm_q8(type, xq.data(), m, nb, w.data(), stride, 0, n, stored.data(), n);
        // In aligned ranges, as the backend's threads take them.
        for (std::int64_t j0 = 0; j0 < n; j0 += 16)
          kern.gemm_q8_rows8(type, xq.data(), m, nb, packed.data(), stride, j0,
                             std::min(n, j0 + 16), rows8.data(), n);
        INFO(traits_of(static_cast<std::uint32_t>(type))->name << " n=" << n << " m=" << m);
        CHECK(stored == rows8);
      }
    }
}
