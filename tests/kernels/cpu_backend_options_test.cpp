// kernels/cpu/cpu_backend.hpp: options from the environment (bad values refused with the
// variable, the value and the choices), bad options refused by make_cpu_backend, and results
// that do not depend on the thread count or the batch, for both numerics and kernel sets.

#include "kernels/cpu/cpu_backend.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

using namespace bastion::kernels;

namespace {

struct env_var {  // sets a variable for one scope, restoring the old value
  env_var(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    ::setenv(name, value, 1);
  }
  ~env_var() {
    if (had_)
      ::setenv(name_, old_.c_str(), 1);
    else
      ::unsetenv(name_);
  }
  const char* name_;
  std::string old_;
  bool had_ = false;
};

std::vector<std::uint8_t> random_q4_1(std::int64_t n, std::int64_t k, std::mt19937& rng) {
  std::vector<std::uint8_t> w(*row_bytes(tensor_type::q4_1, static_cast<std::uint64_t>(n * k)));
  for (auto& b : w) b = static_cast<std::uint8_t>(rng());
  for (std::size_t off = 0; off < w.size(); off += 20) {
    const auto d = float_to_half(0.02f), mn = float_to_half(-0.1f);
    std::memcpy(w.data() + off, &d, 2);
    std::memcpy(w.data() + off + 2, &mn, 2);
  }
  return w;
}

}  // namespace

TEST_CASE("options from the environment: accepted values and refusals that name the variable") {
  cpu_backend_options o;
  {
    env_var a{"BASTION_CPU_KERNELS", "scalar"}, b{"BASTION_CPU_THREADS", "3"},
        c{"BASTION_CPU_NUMERICS", "int8"};
    REQUIRE(cpu_backend_options::from_environment(o));
    CHECK(o.kernels == cpu_kernel_set::scalar);
    CHECK(o.threads == 3);
    CHECK(o.numerics == cpu_matmul_numerics::int8_activations);
  }
  for (auto [name, value] : {std::pair{"BASTION_CPU_KERNELS", "avx512"},
                             {"BASTION_CPU_THREADS", "-1"},
                             {"BASTION_CPU_THREADS", "two"},
                             {"BASTION_CPU_THREADS", "100000"},
                             {"BASTION_CPU_NUMERICS", "fp8"}}) {
    env_var v{name, value};
    cpu_backend_options before;
    before.threads = 5;
    cpu_backend_options after = before;
    const status s = cpu_backend_options::from_environment(after);
    INFO(name << "=" << value << ": " << s.message());
    CHECK(s.code() == status_code::invalid_argument);
    CHECK(s.message().find(name) != std::string::npos);
    CHECK(s.message().find(value) != std::string::npos);
    CHECK(after.threads == 5);  // untouched on error
  }
}

TEST_CASE("make_cpu_backend refuses impossible options") {
  std::unique_ptr<backend> be;
  cpu_backend_options o;
  o.threads = -1;
  CHECK(make_cpu_backend(o, be).code() == status_code::invalid_argument);
  o.threads = 100000;
  CHECK(make_cpu_backend(o, be).code() == status_code::invalid_argument);
  CHECK_FALSE(be);
  o.threads = 0;  // all cores
  CHECK(make_cpu_backend(o, be));
  CHECK(be);
  o.kernels = cpu_kernel_set::avx2;
  if (cpu_has_avx2_kernels())
    CHECK(make_cpu_backend(o, be));
  else
    CHECK(make_cpu_backend(o, be).code() == status_code::unsupported);
}

TEST_CASE("matmul bits do not depend on the thread count or on the batch") {
  std::mt19937 rng{21};
  const std::int64_t n = 203, k = 192, m = 11;
  const auto w = random_q4_1(n, k, rng);
  std::normal_distribution<float> nd;
  std::vector<float> x(static_cast<std::size_t>(m * k));
  for (auto& v : x) v = nd(rng);
  std::vector<cpu_kernel_set> sets{cpu_kernel_set::scalar};
  if (cpu_has_avx2_kernels()) sets.push_back(cpu_kernel_set::avx2);
  for (auto set : sets)
    for (auto numerics : {cpu_matmul_numerics::exact_f32, cpu_matmul_numerics::int8_activations}) {
      std::vector<std::vector<float>> results;
      for (int threads : {1, 2, 3}) {
        std::unique_ptr<backend> be;
        REQUIRE(make_cpu_backend({threads, set, numerics}, be));
        std::vector<float> y(static_cast<std::size_t>(m * n));
        REQUIRE(be->matmul(x.data(), {tensor_type::q4_1, w.data(), n, k}, y.data(), m));
        results.push_back(y);
        for (std::int64_t i = 0; i < m; ++i) {
          std::vector<float> one(static_cast<std::size_t>(n));
          REQUIRE(be->matmul(x.data() + i * k, {tensor_type::q4_1, w.data(), n, k}, one.data(), 1));
          INFO(cpu_kernel_set_name(set) << " threads " << threads << " row " << i);
          CHECK(std::equal(one.begin(), one.end(), y.begin() + i * n));
        }
      }
      INFO(cpu_kernel_set_name(set)
           << " numerics " << (numerics == cpu_matmul_numerics::exact_f32 ? "exact" : "int8"));
      CHECK(results[0] == results[1]);
      CHECK(results[0] == results[2]);
    }
}

TEST_CASE("the two numerics agree within the activation quantization error") {
  std::mt19937 rng{22};
  const std::int64_t n = 64, k = 576, m = 4;
  const auto w = random_q4_1(n, k, rng);
  std::normal_distribution<float> nd;
  std::vector<float> x(static_cast<std::size_t>(m * k));
  for (auto& v : x) v = nd(rng);
  std::unique_ptr<backend> exact, int8;
  REQUIRE(make_cpu_backend({1, cpu_kernel_set::automatic, cpu_matmul_numerics::exact_f32}, exact));
  REQUIRE(make_cpu_backend({1, cpu_kernel_set::automatic, cpu_matmul_numerics::int8_activations},
                           int8));
  std::vector<float> a(static_cast<std::size_t>(m * n)), b(a.size());
  REQUIRE(exact->matmul(x.data(), {tensor_type::q4_1, w.data(), n, k}, a.data(), m));
  REQUIRE(int8->matmul(x.data(), {tensor_type::q4_1, w.data(), n, k}, b.data(), m));
  double num = 0, den = 1e-30;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, static_cast<double>(std::abs(a[i] - b[i])));
    den = std::max(den, static_cast<double>(std::abs(a[i])));
  }
  INFO("normalised difference " << num / den);
  CHECK(num / den < 2e-2);
  CHECK(num / den > 0.0);  // int8 really quantizes: a bug routing it to exact would show here
}

TEST_CASE("products of one input give the bits of separate products; bad lists are refused") {
  std::mt19937 rng{23};
  const std::int64_t k = 96, m = 5;
  // Eleven products (more than one parallel run takes), of the three quantized types, with and
  // without an F32 one among them (the F32 route beside the int8 one in one call); row counts
  // off the eight-row tiles.
  std::vector<std::vector<std::uint8_t>> bytes;
  std::vector<weight_view> ws;
  const tensor_type types[] = {tensor_type::q4_1, tensor_type::q8_0, tensor_type::q4_0};
  for (int i = 0; i < 11; ++i) {
    const tensor_type type = types[i % 3];
    const std::int64_t n = 3 + 9 * i;
    bytes.emplace_back(*row_bytes(type, static_cast<std::uint64_t>(n * k)));
    auto& b = bytes.back();
    for (auto& byte : b) byte = static_cast<std::uint8_t>(rng());
    const std::size_t bb = type == tensor_type::q8_0 ? 34 : type == tensor_type::q4_0 ? 18 : 20;
    for (std::size_t off = 0; off < b.size(); off += bb) {
      const auto d = float_to_half(0.02f), mn = float_to_half(-0.1f);
      std::memcpy(b.data() + off, &d, 2);
      if (type == tensor_type::q4_1) std::memcpy(b.data() + off + 2, &mn, 2);
    }
    ws.push_back({type, b.data(), n, k});
  }
  std::normal_distribution<float> nd;
  std::vector<float> x(static_cast<std::size_t>(m * k));
  for (auto& v : x) v = nd(rng);
  std::vector<float> wf(static_cast<std::size_t>(7 * k));
  for (auto& v : wf) v = nd(rng);
  std::vector<cpu_kernel_set> sets{cpu_kernel_set::scalar};
  if (cpu_has_avx2_kernels()) sets.push_back(cpu_kernel_set::avx2);
  for (auto set : sets)
    for (auto numerics : {cpu_matmul_numerics::exact_f32, cpu_matmul_numerics::int8_activations})
      for (int threads : {1, 2})
        for (bool with_f32 : {false, true}) {
          auto list = ws;
          if (with_f32) list[4] = {tensor_type::f32, wf.data(), 7, k};
          std::unique_ptr<backend> be;
          REQUIRE(make_cpu_backend({threads, set, numerics}, be));
          std::vector<std::vector<float>> together, alone;
          std::vector<float*> outs;
          for (const auto& w : list) {
            together.emplace_back(static_cast<std::size_t>(m * w.rows), -3.0f);
            alone.emplace_back(static_cast<std::size_t>(m * w.rows), -4.0f);
            outs.push_back(together.back().data());
          }
          REQUIRE(be->matmul_shared_input(x.data(), list.data(), outs.data(),
                                          static_cast<int>(list.size()), m));
          for (std::size_t i = 0; i < list.size(); ++i)
            REQUIRE(be->matmul(x.data(), list[i], alone[i].data(), m));
          INFO(cpu_kernel_set_name(set) << " threads " << threads << " int8 "
                                        << (numerics == cpu_matmul_numerics::int8_activations)
                                        << " with an F32 product " << with_f32);
          CHECK(together == alone);
        }

  std::unique_ptr<backend> be;
  REQUIRE(
      make_cpu_backend({1, cpu_kernel_set::automatic, cpu_matmul_numerics::int8_activations}, be));
  std::vector<float> y1(static_cast<std::size_t>(m * ws[0].rows)),
      y2(static_cast<std::size_t>(m * ws[1].rows));
  float* outs[2] = {y1.data(), y2.data()};
  weight_view narrow[2] = {ws[0], ws[1]};
  narrow[1].cols = 64;  // another width than the input's
  status s = be->matmul_shared_input(x.data(), narrow, outs, 2, m);
  INFO(s.message());
  CHECK(s.code() == status_code::invalid_argument);
  CHECK(s.message().find("width") != std::string::npos);
  CHECK(be->matmul_shared_input(x.data(), nullptr, outs, 2, m).code() ==
        status_code::invalid_argument);
  CHECK(be->matmul_shared_input(x.data(), ws.data(), outs, -1, m).code() ==
        status_code::invalid_argument);
  CHECK(be->matmul_shared_input(x.data(), ws.data(), outs, 0, m));  // nothing to do
}

TEST_CASE("repacked weights: the bits of the stored layout; refused where they cannot be read") {
  std::mt19937 rng{24};
  const std::int64_t n = 203, k = 192, m = 6;
  const auto w = random_q4_1(n, k, rng);
  const weight_view stored{tensor_type::q4_1, w.data(), n, k};
  std::normal_distribution<float> nd;
  std::vector<float> x(static_cast<std::size_t>(m * k));
  for (auto& v : x) v = nd(rng);
  std::vector<std::uint8_t> copy(w.size());
  weight_view packed;
  auto refusal = [&](backend& be) {
    const status s = be.repack_weight(stored, copy.data(), packed);
    CHECK(s.code() == status_code::unsupported);
    return s.message();
  };

  // No copy with the exact numerics, with repacking off, or for the scalar kernels, which read
  // the stored layout (a copy would double the matrices' memory for nothing).
  std::unique_ptr<backend> exact, no_repack, scalar;
  REQUIRE(make_cpu_backend({1, cpu_kernel_set::automatic, cpu_matmul_numerics::exact_f32}, exact));
  cpu_backend_options off{1, cpu_kernel_set::automatic, cpu_matmul_numerics::int8_activations};
  off.repack_weights = false;
  REQUIRE(make_cpu_backend(off, no_repack));
  REQUIRE(
      make_cpu_backend({1, cpu_kernel_set::scalar, cpu_matmul_numerics::int8_activations}, scalar));
  CHECK(exact->repacked_bytes(stored) == 0);
  CHECK_THAT(refusal(*exact), Catch::Contains("exact numerics"));
  CHECK(no_repack->repacked_bytes(stored) == 0);
  CHECK_THAT(refusal(*no_repack), Catch::Contains("repacking is off"));
  CHECK(scalar->repacked_bytes(stored) == 0);
  CHECK_THAT(refusal(*scalar), Catch::Contains("scalar kernels read the stored layout"));

  if (!cpu_has_avx2_kernels()) {
    WARN("this CPU lacks AVX2/FMA/F16C: the repacked layout is not checked");
    return;
  }
  for (int threads : {1, 2}) {
    std::unique_ptr<backend> be;
    REQUIRE(make_cpu_backend({threads, cpu_kernel_set::avx2, cpu_matmul_numerics::int8_activations},
                             be));
    REQUIRE(be->repacked_bytes(stored) == w.size());
    REQUIRE(be->repack_weight(stored, copy.data(), packed));
    CHECK(packed.layout == weight_layout::cpu_rows8);
    CHECK(packed.data == copy.data());
    CHECK(be->repacked_bytes(packed) == 0);  // already repacked
    std::vector<float> a(static_cast<std::size_t>(m * n)), b(a.size(), -1.0f);
    REQUIRE(be->matmul(x.data(), stored, a.data(), m));
    REQUIRE(be->matmul(x.data(), packed, b.data(), m));
    INFO("threads " << threads);
    CHECK(a == b);
    const std::int32_t id = 5;
    std::vector<float> row(static_cast<std::size_t>(k));
    CHECK(be->embed_rows(packed, &id, 1, row.data()).code() == status_code::invalid_argument);
    // Fewer than eight rows, or an F32 matrix: nothing to gain, no copy.
    CHECK(be->repacked_bytes({tensor_type::q4_1, w.data(), 7, k}) == 0);
    CHECK(be->repacked_bytes({tensor_type::f32, x.data(), m, k}) == 0);
  }
  // The copy handed to a backend that cannot read it is refused, not misread: one with the
  // exact numerics, or one with the scalar kernels.
  std::vector<float> y(static_cast<std::size_t>(m * n));
  CHECK(exact->matmul(x.data(), packed, y.data(), m).code() == status_code::invalid_argument);
  const status misread = scalar->matmul(x.data(), packed, y.data(), m);
  CHECK(misread.code() == status_code::invalid_argument);
  CHECK_THAT(misread.message(), Catch::Contains("scalar kernels"));
}
