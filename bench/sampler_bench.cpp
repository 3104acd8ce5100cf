// The sampler's draw against the sorting sampler it replaced (tests/kernels/full_sort_sampler:
// a full sort, a partial sort for top-k; the baseline, measured in the same run on the same rows):
// microseconds per sampled token for a vocabulary of the given size, per setting, and the ratio.
// Also checks both pick the same tokens.
//
//   build/bench/sampler_bench [vocabulary, default 49152] [draws per setting, default 200]

#include "kernels/engine/sampler.hpp"
#include "tests/kernels/full_sort_sampler.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

using namespace bastion;
using steady = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const long vocab = argc > 1 ? std::atol(argv[1]) : 49152;
  const int draws = argc > 2 ? std::atoi(argv[2]) : 200;
  if (vocab < 1 || draws < 1) {
    std::fprintf(stderr, "usage: sampler_bench [vocabulary >= 1] [draws >= 1]\n");
    return 2;
  }
  std::mt19937 rng{7};
  std::normal_distribution<float> logit{0.0f, 3.0f};
  std::vector<float> row(static_cast<std::size_t>(vocab));
  for (auto& x : row) x = logit(rng);

  std::printf("# build/bench/sampler_bench %ld %d: rows of N(0, 3) logits, seed 7\n", vocab, draws);
  std::printf("%-34s %12s %12s %8s\n", "setting", "ours us", "sort us", "speedup");
  for (int top_k : {0, 40}) {
    for (float top_p : {1.0f, 0.9f}) {
      kernels::sampling_params p;
      p.temperature = 0.8f;
      p.top_k = top_k;
      p.top_p = top_p;
      p.seed = 11;
      kernels::sampler ours{p};
      test::full_sort_sampler plain{p};
      std::vector<std::int32_t> a, b;
      const auto t0 = steady::now();
      for (int i = 0; i < draws; ++i) a.push_back(ours.sample(row.data(), vocab, {}));
      const auto t1 = steady::now();
      for (int i = 0; i < draws; ++i) b.push_back(plain.sample(row));
      const auto t2 = steady::now();
      const double us_ours = std::chrono::duration<double, std::micro>(t1 - t0).count() / draws;
      const double us_sort = std::chrono::duration<double, std::micro>(t2 - t1).count() / draws;
      char name[64];
      std::snprintf(name, sizeof name, "T 0.8, top_k %d, top_p %.1f", top_k,
                    static_cast<double>(top_p));
      std::printf("%-34s %12.0f %12.0f %7.2fx%s\n", name, us_ours, us_sort, us_sort / us_ours,
                  a == b ? "" : "  (tokens differ!)");
    }
  }
  return 0;
}
