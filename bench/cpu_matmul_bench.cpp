// cpu_matmul_bench: one matrix product of the CPU backend, best of many runs (the minimum is the
// figure least disturbed by other processes on a shared machine). For tuning the kernels.
//
//   cpu_matmul_bench [--type q4_1|q4_0|q8_0|f16|f32] [--m 1] [--n 1536] [--k 576]
//                    [--kernels auto|scalar|avx2] [--numerics int8|exact] [--threads 1]
//                    [--reps 200] [--layout stored|rows8]
// Prints one JSON object: best and median microseconds, GMAC/s and weight GB/s at the best.
// --layout rows8: the matrix repacked first (backend::repack_weight, int8 numerics only), as
// the engine's resident weights hold it.

#include "kernels/cpu/cpu_backend.hpp"
#include "kernels/quant/quantize.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace bastion::kernels;

namespace {

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "cpu_matmul_bench: %s\n", why.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string type_name = "q4_1", layout = "stored";
  std::int64_t m = 1, n = 1536, k = 576, reps = 200;
  cpu_backend_options options;
  options.threads = 1;
  options.numerics = cpu_matmul_numerics::int8_activations;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], v = argv[i + 1];
    auto num = [&] {
      const long long x = std::atoll(v.c_str());
      if (x <= 0 || x > 1000000) die(key + " " + v + " is not a positive count");
      return static_cast<std::int64_t>(x);
    };
    if (key == "--type")
      type_name = v;
    else if (key == "--m")
      m = num();
    else if (key == "--n")
      n = num();
    else if (key == "--k")
      k = num();
    else if (key == "--reps")
      reps = num();
    else if (key == "--threads")
      options.threads = static_cast<int>(num());
    else if (key == "--layout")
      layout = v;
    else if (key == "--kernels")
      options.kernels = v == "scalar" ? cpu_kernel_set::scalar
                        : v == "avx2" ? cpu_kernel_set::avx2
                                      : cpu_kernel_set::automatic;
    else if (key == "--numerics")
      options.numerics =
          v == "exact" ? cpu_matmul_numerics::exact_f32 : cpu_matmul_numerics::int8_activations;
    else
      die("unknown argument " + key);
  }
  tensor_type type;
  if (type_name == "q4_1")
    type = tensor_type::q4_1;
  else if (type_name == "q4_0")
    type = tensor_type::q4_0;
  else if (type_name == "q8_0")
    type = tensor_type::q8_0;
  else if (type_name == "f16")
    type = tensor_type::f16;
  else if (type_name == "f32")
    type = tensor_type::f32;
  else
    die("unknown type " + type_name);
  const auto stride = row_bytes(type, static_cast<std::uint64_t>(k));
  if (!stride) die("k must be a multiple of the type's block");
  // Random bytes make valid quantized blocks once the scales are sane: write F16 scales.
  std::mt19937 rng{1};
  std::vector<std::uint8_t> w(*stride * static_cast<std::uint64_t>(n));
  for (auto& b : w) b = static_cast<std::uint8_t>(rng());
  if (type == tensor_type::f32 || type == tensor_type::f16) {
    std::normal_distribution<float> nd;
    for (std::int64_t i = 0; i < n * k; ++i) {
      const float v = nd(rng) * 0.05f;
      if (type == tensor_type::f32)
        std::memcpy(w.data() + 4 * i, &v, 4);
      else {
        const auto h = float_to_half(v);
        std::memcpy(w.data() + 2 * i, &h, 2);
      }
    }
  } else {
    const std::uint32_t bb = traits_of(static_cast<std::uint32_t>(type))->block_bytes;
    for (std::size_t off = 0; off < w.size(); off += bb) {
      const auto h = float_to_half(0.01f);
      std::memcpy(w.data() + off, &h, 2);
      if (type == tensor_type::q4_1) std::memcpy(w.data() + off + 2, &h, 2);
    }
  }
  std::vector<float> x(static_cast<std::size_t>(m * k)), y(static_cast<std::size_t>(m * n));
  std::normal_distribution<float> nd;
  for (auto& v : x) v = nd(rng);
  std::unique_ptr<backend> be;
  if (auto s = make_cpu_backend(options, be); !s) die(s.message());
  weight_view view{type, w.data(), n, k};
  std::vector<std::uint8_t> repacked;
  if (layout == "rows8") {
    repacked.resize(be->repacked_bytes(view));
    if (repacked.empty()) die("no rows8 layout for this type, size or numerics");
    if (auto s = be->repack_weight(view, repacked.data(), view); !s) die(s.message());
  } else if (layout != "stored") {
    die("unknown layout " + layout);
  }
  std::vector<double> us;
  for (std::int64_t r = 0; r < reps + 3; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    if (auto s = be->matmul(x.data(), view, y.data(), m); !s) die(s.message());
    const double t =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    if (r >= 3) us.push_back(t);
  }
  std::sort(us.begin(), us.end());
  const double best = us.front(), med = us[us.size() / 2];
  std::printf(
      "{\"type\": \"%s\", \"layout\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, \"kernels\": "
      "\"%s\", "
      "\"threads\": %d, \"best_us\": %.2f, \"median_us\": %.2f, \"gmac_s\": %.2f, "
      "\"weight_gb_s\": %.2f}\n",
      type_name.c_str(), layout.c_str(), static_cast<long long>(m), static_cast<long long>(n),
      static_cast<long long>(k), std::string{cpu_kernel_set_name(options.kernels)}.c_str(),
      options.threads, best, med, static_cast<double>(m * n * k) / best / 1e3,
      static_cast<double>(w.size()) / best / 1e3);
  return 0;
}
