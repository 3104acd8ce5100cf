// The decoder operations of the CPU backend (the reference every other backend is held to),
// one test case per operation, each against a plain double-precision loop written from the
// operation's definition, plus the arguments each must refuse.

#include "kernels/backend.hpp"
#include "tests/support/numeric.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

using namespace bastion::kernels;

using bastion::test::normalised_error;
using bastion::test::random_vector;

namespace {

void put_u16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
  out.push_back(static_cast<std::uint8_t>(v >> 8));
}

// Random bytes of a valid matrix of `type` (random scales and quants for block types).
std::vector<std::uint8_t> random_matrix(tensor_type type, std::int64_t rows, std::int64_t cols,
                                        std::mt19937& rng) {
  std::vector<std::uint8_t> out;
  std::uniform_int_distribution<int> byte{0, 255};
  std::uniform_real_distribution<float> scale{0.001f, 0.05f};
  const std::int64_t n = rows * cols;
  auto values = random_vector(static_cast<std::size_t>(n), rng);
  switch (type) {
    case tensor_type::f32:
      out.resize(static_cast<std::size_t>(n) * 4);
      std::memcpy(out.data(), values.data(), out.size());
      break;
    case tensor_type::f16:
      for (float v : values) put_u16(out, float_to_half(v));
      break;
    case tensor_type::bf16:
      for (float v : values) put_u16(out, float_to_bf16(v));
      break;
    case tensor_type::q8_0:
    case tensor_type::q4_0:
    case tensor_type::q4_1: {
      const auto tr = *traits_of(static_cast<std::uint32_t>(type));
      for (std::int64_t b = 0; b < n / 32; ++b) {
        put_u16(out, float_to_half(scale(rng)));
        if (type == tensor_type::q4_1) put_u16(out, float_to_half(-scale(rng) * 8.0f));
        const std::size_t quants = tr.block_bytes - (type == tensor_type::q4_1 ? 4u : 2u);
        for (std::size_t i = 0; i < quants; ++i)
          out.push_back(static_cast<std::uint8_t>(byte(rng)));
      }
      break;
    }
  }
  return out;
}

std::vector<double> dequantized(tensor_type type, const std::vector<std::uint8_t>& bytes,
                                std::int64_t n) {
  std::vector<float> f(static_cast<std::size_t>(n));
  dequantize_row(type, bytes.data(), f.data(), n);
  return {f.begin(), f.end()};
}

}  // namespace

TEST_CASE("matmul with a weight in every stored type matches the dequantized product") {
  auto be = make_cpu_backend();
  std::mt19937 rng{3};
  for (auto type : {tensor_type::f32, tensor_type::f16, tensor_type::bf16, tensor_type::q8_0,
                    tensor_type::q4_0, tensor_type::q4_1}) {
    for (auto [m, n, k] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{1, 1, 32},
                           {3, 70, 64},
                           {5, 130, 96}}) {
      const auto bytes = random_matrix(type, n, k, rng);
      const auto w = dequantized(type, bytes, n * k);
      const auto x = random_vector(static_cast<std::size_t>(m * k), rng);
      // Offset by one byte: F32 rows in safetensors files are not aligned.
      std::vector<std::uint8_t> shifted(bytes.size() + 1);
      std::memcpy(shifted.data() + 1, bytes.data(), bytes.size());
      std::vector<float> y(static_cast<std::size_t>(m * n), -7.0f);
      REQUIRE(be->matmul(x.data(), weight_view{type, shifted.data() + 1, n, k}, y.data(), m));
      std::vector<double> ref(y.size());
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
          double acc = 0.0;
          for (std::int64_t p = 0; p < k; ++p)
            acc += double{x[static_cast<std::size_t>(i * k + p)]} *
                   w[static_cast<std::size_t>(j * k + p)];
          ref[static_cast<std::size_t>(i * n + j)] = acc;
        }
      INFO("type " << traits_of(static_cast<std::uint32_t>(type))->name << " m=" << m << " n=" << n
                   << " k=" << k);
      CHECK(normalised_error(y.data(), ref) < 1e-5);
    }
  }
}

TEST_CASE("matmul gives each row the same bits however many rows share the call") {
  auto be = make_cpu_backend();
  std::mt19937 rng{4};
  const std::int64_t n = 100, k = 96, m = 7;
  const auto bytes = random_matrix(tensor_type::q8_0, n, k, rng);
  const weight_view w{tensor_type::q8_0, bytes.data(), n, k};
  const auto x = random_vector(static_cast<std::size_t>(m * k), rng);
  std::vector<float> all(static_cast<std::size_t>(m * n)), one(static_cast<std::size_t>(n));
  REQUIRE(be->matmul(x.data(), w, all.data(), m));
  for (std::int64_t i = 0; i < m; ++i) {
    REQUIRE(be->matmul(x.data() + i * k, w, one.data(), 1));
    CHECK(std::equal(one.begin(), one.end(), all.begin() + i * n));
  }
}

TEST_CASE("matmul refuses weights it cannot read") {
  auto be = make_cpu_backend();
  float x[32] = {}, y[2] = {};
  std::uint8_t bytes[64] = {};
  CHECK(be->matmul(x, weight_view{tensor_type::q8_0, bytes, 1, 16}, y, 1).code() ==
        status_code::invalid_argument);  // 16 is not a whole Q8_0 block
  CHECK(be->matmul(x, weight_view{static_cast<tensor_type>(12), bytes, 1, 32}, y, 1).code() ==
        status_code::unsupported);  // Q4_K
  CHECK(be->matmul(x, weight_view{tensor_type::f32, nullptr, 1, 32}, y, 1).code() ==
        status_code::invalid_argument);
}

TEST_CASE("embed_rows dequantizes the rows of the given ids and refuses ids outside") {
  auto be = make_cpu_backend();
  std::mt19937 rng{5};
  const std::int64_t rows = 10, cols = 64;
  const auto bytes = random_matrix(tensor_type::q4_1, rows, cols, rng);
  const auto table = dequantized(tensor_type::q4_1, bytes, rows * cols);
  const weight_view w{tensor_type::q4_1, bytes.data(), rows, cols};
  const std::int32_t ids[] = {9, 0, 9, 3};
  std::vector<float> out(4 * cols);
  REQUIRE(be->embed_rows(w, ids, 4, out.data()));
  for (int i = 0; i < 4; ++i)
    for (std::int64_t c = 0; c < cols; ++c)
      CHECK(out[static_cast<std::size_t>(i * cols + c)] ==
            static_cast<float>(table[static_cast<std::size_t>(ids[i] * cols + c)]));
  const std::int32_t bad[] = {1, 10};
  auto s = be->embed_rows(w, bad, 2, out.data());
  CHECK(s.code() == status_code::invalid_argument);
  CHECK_THAT(s.message(), Catch::Contains("10"));
  const std::int32_t negative[] = {-1};
  CHECK(be->embed_rows(w, negative, 1, out.data()).code() == status_code::invalid_argument);
}

TEST_CASE("rope rotates the pairs of each style by position times the pair's frequency") {
  auto be = make_cpu_backend();
  std::mt19937 rng{6};
  const std::int64_t tokens = 3, heads = 2, hd = 8;
  for (auto style : {rope_style::adjacent_pairs, rope_style::half_split}) {
    for (std::int64_t rot : {hd, std::int64_t{4}}) {
      const rope_params p{style, rot, 100.0f};
      const std::int32_t pos[] = {0, 5, 31};
      auto x = random_vector(static_cast<std::size_t>(tokens * heads * hd), rng);
      const auto before = x;
      REQUIRE(be->rope_f32(x.data(), pos, tokens, heads, hd, p));
      std::vector<double> ref(before.begin(), before.end());
      for (std::int64_t t = 0; t < tokens; ++t)
        for (std::int64_t h = 0; h < heads; ++h)
          for (std::int64_t i = 0; i < rot / 2; ++i) {
            const std::int64_t a = style == rope_style::adjacent_pairs ? 2 * i : i;
            const std::int64_t b = style == rope_style::adjacent_pairs ? 2 * i + 1 : i + rot / 2;
            const double angle = pos[t] * std::pow(100.0, -2.0 * static_cast<double>(i) / rot);
            const std::size_t base = static_cast<std::size_t>((t * heads + h) * hd);
            const double x0 = before[base + static_cast<std::size_t>(a)];
            const double x1 = before[base + static_cast<std::size_t>(b)];
            ref[base + static_cast<std::size_t>(a)] = x0 * std::cos(angle) - x1 * std::sin(angle);
            ref[base + static_cast<std::size_t>(b)] = x0 * std::sin(angle) + x1 * std::cos(angle);
          }
      INFO("style " << static_cast<int>(style) << " rot_dim " << rot);
      CHECK(normalised_error(x.data(), ref) < 1e-6);
      // Position 0 is the identity; dimensions past rot_dim are untouched.
      CHECK(std::equal(x.begin(), x.begin() + heads * hd, before.begin()));
      for (std::int64_t d = rot; d < hd; ++d)
        CHECK(x[static_cast<std::size_t>(hd + d)] == before[static_cast<std::size_t>(hd + d)]);
    }
  }
  float x[8] = {};
  const std::int32_t pos[] = {0};
  CHECK(be->rope_f32(x, pos, 1, 1, 8, {rope_style::half_split, 3, 10000.0f}).code() ==
        status_code::invalid_argument);  // odd rot_dim
  CHECK(be->rope_f32(x, pos, 1, 1, 8, {rope_style::half_split, 10, 10000.0f}).code() ==
        status_code::invalid_argument);  // rot_dim > head_dim
}

TEST_CASE("rope makes q.k depend only on the distance between positions") {
  auto be = make_cpu_backend();
  std::mt19937 rng{7};
  const std::int64_t hd = 16;
  const auto q = random_vector(hd, rng), k = random_vector(hd, rng);
  for (auto style : {rope_style::adjacent_pairs, rope_style::half_split}) {
    auto score = [&](std::int32_t pq, std::int32_t pk) {
      auto qq = q, kk = k;
      const rope_params p{style, hd, 10000.0f};
      REQUIRE(be->rope_f32(qq.data(), &pq, 1, 1, hd, p));
      REQUIRE(be->rope_f32(kk.data(), &pk, 1, 1, hd, p));
      return std::inner_product(qq.begin(), qq.end(), kk.begin(), 0.0);
    };
    CHECK(score(7, 3) == Approx(score(104, 100)).epsilon(1e-4));
    CHECK(score(7, 3) != Approx(score(7, 6)).epsilon(1e-4));
  }
}

TEST_CASE("paged attention equals dense causal GQA attention over scattered blocks") {
  auto be = make_cpu_backend();
  std::mt19937 rng{8};
  const std::int64_t n_heads = 6, n_kv = 2, hd = 8, kv_dim = n_kv * hd, block_tokens = 4;
  const std::int64_t pool_blocks = 12;
  // Two sequences: A holds 9 keys (3 blocks), B 5 keys (2 blocks), blocks deliberately shuffled.
  const std::vector<std::int32_t> blocks_a = {7, 2, 10}, blocks_b = {0, 5};
  const std::int64_t len_a = 9, len_b = 5;
  std::vector<float> k_pool(static_cast<std::size_t>(pool_blocks * block_tokens * kv_dim), NAN);
  std::vector<float> v_pool = k_pool;
  const auto keys_a = random_vector(static_cast<std::size_t>(len_a * kv_dim), rng);
  const auto vals_a = random_vector(static_cast<std::size_t>(len_a * kv_dim), rng);
  const auto keys_b = random_vector(static_cast<std::size_t>(len_b * kv_dim), rng);
  const auto vals_b = random_vector(static_cast<std::size_t>(len_b * kv_dim), rng);
  const paged_kv_view kv{k_pool.data(), v_pool.data(), pool_blocks, block_tokens, kv_dim};
  auto slots_of = [&](const std::vector<std::int32_t>& blocks, std::int64_t len) {
    std::vector<std::int32_t> s;
    for (std::int64_t j = 0; j < len; ++j)
      s.push_back(static_cast<std::int32_t>(
          blocks[static_cast<std::size_t>(j / block_tokens)] * block_tokens + j % block_tokens));
    return s;
  };
  const auto slots_a = slots_of(blocks_a, len_a), slots_b = slots_of(blocks_b, len_b);
  REQUIRE(be->kv_write_f32(keys_a.data(), vals_a.data(), slots_a.data(), len_a, kv));
  REQUIRE(be->kv_write_f32(keys_b.data(), vals_b.data(), slots_b.data(), len_b, kv));
  // Queries: the last 3 positions of A (a prefill chunk) and the last position of B (decode).
  const std::vector<std::int32_t> positions = {6, 7, 8, 4}, token_seq = {0, 0, 0, 1};
  const std::vector<std::int32_t> table = {7, 2, 10, 0, 5}, begin = {0, 3, 5};
  const auto q = random_vector(static_cast<std::size_t>(4 * n_heads * hd), rng);
  attention_batch ab;
  ab.n_tokens = 4;
  ab.n_heads = n_heads;
  ab.n_kv_heads = n_kv;
  ab.head_dim = hd;
  ab.scale = 0.35f;
  ab.positions = positions.data();
  ab.token_seq = token_seq.data();
  ab.n_seqs = 2;
  ab.seq_block_begin = begin.data();
  ab.block_table = table.data();
  std::vector<float> out(q.size());
  REQUIRE(be->paged_attention_f32(q.data(), ab, kv, out.data()));

  std::vector<double> ref(q.size());
  for (std::size_t t = 0; t < 4; ++t) {
    const auto& keys = token_seq[t] == 0 ? keys_a : keys_b;
    const auto& vals = token_seq[t] == 0 ? vals_a : vals_b;
    for (std::int64_t h = 0; h < n_heads; ++h) {
      const std::int64_t g = h / (n_heads / n_kv);
      std::vector<double> w;
      for (std::int64_t j = 0; j <= positions[t]; ++j) {
        double dot = 0.0;
        for (std::int64_t d = 0; d < hd; ++d)
          dot += double{q[static_cast<std::size_t>(
                     (static_cast<std::int64_t>(t) * n_heads + h) * hd + d)]} *
                 double{keys[static_cast<std::size_t>(j * kv_dim + g * hd + d)]};
        w.push_back(dot * 0.35);
      }
      const double mx = *std::max_element(w.begin(), w.end());
      double sum = 0.0;
      for (auto& x : w) sum += (x = std::exp(x - mx));
      for (std::int64_t d = 0; d < hd; ++d) {
        double acc = 0.0;
        for (std::size_t j = 0; j < w.size(); ++j)
          acc += w[j] / sum *
                 double{vals[j * static_cast<std::size_t>(kv_dim) +
                             static_cast<std::size_t>(g * hd + d)]};
        ref[static_cast<std::size_t>((static_cast<std::int64_t>(t) * n_heads + h) * hd + d)] = acc;
      }
    }
  }
  CHECK(normalised_error(out.data(), ref) < 1e-5);

  SECTION("a query past its sequence's blocks is refused") {
    const std::vector<std::int32_t> far = {12, 7, 8, 4};
    ab.positions = far.data();
    CHECK(be->paged_attention_f32(q.data(), ab, kv, out.data()).code() ==
          status_code::invalid_argument);
  }
  SECTION("a block id outside the pool is refused") {
    const std::vector<std::int32_t> bad_table = {7, 2, 12, 0, 5};
    ab.block_table = bad_table.data();
    CHECK(be->paged_attention_f32(q.data(), ab, kv, out.data()).code() ==
          status_code::invalid_argument);
  }
  SECTION("kv heads that do not divide the heads are refused") {
    ab.n_kv_heads = 4;
    CHECK(be->paged_attention_f32(q.data(), ab, kv, out.data()).code() ==
          status_code::invalid_argument);
  }
}

TEST_CASE("kv_write refuses slots outside the pool") {
  auto be = make_cpu_backend();
  std::vector<float> k(8), v(8), pool(2 * 4 * 8);
  std::vector<float> pool_v = pool;
  const paged_kv_view kv{pool.data(), pool_v.data(), 2, 4, 8};
  const std::int32_t slot_ok[] = {7}, slot_bad[] = {8};
  CHECK(be->kv_write_f32(k.data(), v.data(), slot_ok, 1, kv));
  CHECK(be->kv_write_f32(k.data(), v.data(), slot_bad, 1, kv).code() ==
        status_code::invalid_argument);
}

TEST_CASE("silu_mul, add_bias, add and softmax follow their definitions") {
  auto be = make_cpu_backend();
  std::mt19937 rng{9};
  const auto gate = random_vector(50, rng, 3.0f), up = random_vector(50, rng);
  std::vector<float> out(50);
  REQUIRE(be->silu_mul_f32(gate.data(), up.data(), out.data(), 50));
  std::vector<double> ref(50);
  for (std::size_t i = 0; i < 50; ++i)
    ref[i] = double{gate[i]} / (1.0 + std::exp(-double{gate[i]})) * double{up[i]};
  CHECK(normalised_error(out.data(), ref) < 1e-6);

  std::vector<float> y = {1, 2, 3, 4, 5, 6};
  const float bias[] = {10, 20, 30};
  REQUIRE(be->add_bias_f32(y.data(), bias, 2, 3));
  CHECK(y == std::vector<float>{11, 22, 33, 14, 25, 36});
  REQUIRE(be->add_f32(y.data(), y.data() + 3, 3));
  CHECK(y == std::vector<float>{25, 47, 69, 14, 25, 36});

  std::vector<float> logits = {1000.0f, 999.0f, -5.0f, 0.0f, 0.0f, 0.0f};
  REQUIRE(be->softmax_f32(logits.data(), 2, 3));  // large values: needs max subtraction
  CHECK(logits[0] == Approx(1.0 / (1.0 + std::exp(-1.0) + std::exp(-1005.0))));
  CHECK(logits[0] + logits[1] + logits[2] == Approx(1.0));
  CHECK(logits[3] == Approx(1.0 / 3));
}
