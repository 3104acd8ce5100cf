#pragma once
// The sampler's definition written the plain way, as the sampler was before it learned to
// select instead of sort (a full sort, or a partial sort for top-k): the reference its tests
// compare with and its benchmark's baseline.

#include "kernels/engine/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace bastion::test {

// The sampler's definition written the plain way: sort every token, most likely first (equal
// scores by id), keep top-k, softmax in double, keep the top-p prefix, walk it with the draw.
// It consumes the generator exactly as the sampler does (one draw per sampled token).
struct full_sort_sampler {
  kernels::sampling_params p;
  std::mt19937_64 rng{p.seed};

  std::int32_t sample(const std::vector<float>& logits) {
    std::vector<std::pair<float, std::int32_t>> c;
    c.reserve(logits.size());
    for (std::size_t i = 0; i < logits.size(); ++i)
      c.emplace_back(logits[i] / p.temperature, static_cast<std::int32_t>(i));
    auto more_likely = [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    if (p.top_k > 0 && static_cast<std::size_t>(p.top_k) < c.size()) {
      const auto k = static_cast<std::ptrdiff_t>(p.top_k);
      std::partial_sort(c.begin(), c.begin() + k, c.end(), more_likely);
      c.resize(static_cast<std::size_t>(p.top_k));
    } else {
      std::sort(c.begin(), c.end(), more_likely);
    }
    std::vector<double> prob;
    double sum = 0.0;
    for (const auto& [score, id] : c)
      sum += prob.emplace_back(
          std::exp(static_cast<double>(score) - static_cast<double>(c.front().first)));
    for (auto& x : prob) x /= sum;
    std::size_t keep = c.size();
    double mass = 1.0;
    if (p.top_p < 1.0f) {
      double cumulative = 0.0;
      std::size_t n = 0;
      while (n < keep) {
        cumulative += prob[n++];
        if (cumulative >= static_cast<double>(p.top_p)) break;
      }
      keep = n;
      mass = cumulative;
    }
    const double r = static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0) * mass;
    double acc = 0.0;
    for (std::size_t i = 0; i < keep; ++i)
      if (r < (acc += prob[i])) return c[i].second;
    return c[keep - 1].second;
  }
};

}  // namespace bastion::test
