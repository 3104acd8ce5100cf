#include "kernels/engine/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace bastion::kernels {

status sampling_params::validate() const {
  auto bad = [](const char* field, const std::string& value, const char* want) {
    return status{status_code::invalid_argument,
                  std::string{"sampling: "} + field + " = " + value + " " + want};
  };
  if (!std::isfinite(temperature) || temperature < 0.0f)
    return bad("temperature", std::to_string(temperature), "must be finite and >= 0");
  if (top_k < 0) return bad("top_k", std::to_string(top_k), "must be >= 0");
  if (!(top_p > 0.0f && top_p <= 1.0f))
    return bad("top_p", std::to_string(top_p), "must be in (0, 1]");
  if (!std::isfinite(repetition_penalty) || repetition_penalty <= 0.0f)
    return bad("repetition_penalty", std::to_string(repetition_penalty), "must be finite and > 0");
  return status::ok();
}

sampler::sampler(const sampling_params& params) : params_(params), rng_(params.seed) {}

double sampler::uniform() {
  return static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0);  // 53 bits / 2^53
}

std::int32_t sampler::sample(const float* logits, std::int64_t vocab,
                             const std::vector<std::int32_t>& history) {
  work_.assign(logits, logits + vocab);
  if (params_.repetition_penalty != 1.0f) {
    // Each distinct earlier token once: shrink its logit towards "less likely" (divide a
    // positive logit, multiply a negative one), as the CTRL paper and Hugging Face do.
    std::vector<std::int32_t> seen(history);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (auto t : seen) {
      if (t < 0 || t >= vocab) continue;
      float& l = work_[static_cast<std::size_t>(t)];
      l = l > 0.0f ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  }
  if (params_.temperature == 0.0f)
    return static_cast<std::int32_t>(std::max_element(work_.begin(), work_.end()) - work_.begin());

  candidates_.clear();
  candidates_.reserve(static_cast<std::size_t>(vocab));
  for (std::int64_t i = 0; i < vocab; ++i)
    candidates_.emplace_back(work_[static_cast<std::size_t>(i)] / params_.temperature,
                             static_cast<std::int32_t>(i));
  // Most likely first; equal logits by id so the order (and the draw) is reproducible.
  auto more_likely = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  std::size_t keep = candidates_.size();
  if (params_.top_k > 0 && static_cast<std::size_t>(params_.top_k) < keep) {
    keep = static_cast<std::size_t>(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(keep),
                      candidates_.end(), more_likely);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), more_likely);
  }
  candidates_.resize(keep);
  // Softmax over the kept candidates, in double.
  const double top = candidates_.front().first;
  std::vector<double> prob(keep);
  double sum = 0.0;
  for (std::size_t i = 0; i < keep; ++i)
    sum += prob[i] = std::exp(static_cast<double>(candidates_[i].first) - top);
  for (auto& p : prob) p /= sum;
  if (params_.top_p < 1.0f) {
    double cumulative = 0.0;
    std::size_t n = 0;
    while (n < keep) {
      cumulative += prob[n++];
      if (cumulative >= static_cast<double>(params_.top_p)) break;
    }
    keep = n;  // at least one: the most likely token always survives
    sum = cumulative;
  } else {
    sum = 1.0;
  }
  const double r = uniform() * sum;
  double acc = 0.0;
  for (std::size_t i = 0; i < keep; ++i) {
    acc += prob[i];
    if (r < acc) return candidates_[i].second;
  }
  return candidates_[keep - 1].second;  // rounding left r just above the last boundary
}

}  // namespace bastion::kernels
