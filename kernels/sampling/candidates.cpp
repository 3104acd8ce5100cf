#include "kernels/sampling/candidates.hpp"

#include <cmath>
#include <limits>
#include <string>

namespace bastion::kernels {

status check_sampling_candidates(const float* x, std::int64_t rows, std::int64_t dim,
                                 const float* temperature, float window, std::int32_t capacity,
                                 const candidate_summary* summaries, const std::int32_t* ids,
                                 const float* logits) {
  auto bad = [](const std::string& why) {
    return status{status_code::invalid_argument, "sampling_candidates_f32: " + why};
  };
  if (rows < 0 || dim <= 0) return bad("a shape that is not rows >= 0, dim > 0");
  if (capacity <= 0) return bad("capacity " + std::to_string(capacity) + " is not > 0");
  if (!(window >= 0.0f) || !std::isfinite(window))
    return bad("window " + std::to_string(window) + " is not finite and >= 0");
  if (rows > 0 && (!x || !temperature || !summaries || !ids || !logits)) return bad("null pointer");
  return status::ok();
}

status host_sampling_candidates(const float* x, std::int64_t rows, std::int64_t dim,
                                const float* temperature, float window, std::int32_t capacity,
                                candidate_summary* summaries, std::int32_t* ids, float* logits) {
  if (auto st = check_sampling_candidates(x, rows, dim, temperature, window, capacity, summaries,
                                          ids, logits);
      !st)
    return st;
  constexpr float never = -std::numeric_limits<float>::infinity();
  for (std::int64_t r = 0; r < rows; ++r) {
    candidate_summary& s = summaries[r];
    s = candidate_summary{};
    const float t = temperature[r];
    if (!(t > 0.0f)) continue;  // not a sampled row: nothing asked
    const float* row = x + r * dim;
    float best = never;
    for (std::int64_t i = 0; i < dim; ++i) best = std::max(best, sampling_score(row[i], t));
    s.best = best;
    if (best == never || best == -never) continue;  // no finite best: the sampler needs the row
    const float floor = best - window;
    std::int32_t* row_ids = ids + r * capacity;
    float* row_logits = logits + r * capacity;
    for (std::int64_t i = 0; i < dim; ++i) {
      const float si = sampling_score(row[i], t);
      s.total += std::exp(static_cast<double>(si) - static_cast<double>(best));
      if (si < floor) continue;
      if (s.count < capacity) {
        row_ids[s.count] = static_cast<std::int32_t>(i);
        row_logits[s.count] = row[i];
      }
      ++s.count;
    }
  }
  return status::ok();
}

}  // namespace bastion::kernels
