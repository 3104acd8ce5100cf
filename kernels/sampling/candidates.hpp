#pragma once
// What the sampler needs of a row of logits to draw from it without the whole row: the best
// score, the softmax denominator over the row and the few tokens near the top. A device
// backend computes this beside the logits (backend::sampling_candidates_f32) and sends back a
// few kilobytes per sampled sequence instead of the row (49152 to 151936 floats); the
// sampler then picks the token it would pick from the whole row (sampler::sample_from), or
// asks for the row when the draw falls where the candidates cannot tell.

#include "kernels/status.hpp"

#include <cmath>
#include <cstdint>
#include <limits>

namespace bastion::kernels {

/// A token's score when sampling at `temperature` (> 0): its logit over the temperature, a NaN
/// logit (a broken model) as -inf so that it is never picked and orderings stay total. The
/// sampler and every backend's candidates score alike (the CUDA kernel mirrors this on device).
inline float sampling_score(float logit, float temperature) {
  return std::isnan(logit) ? -std::numeric_limits<float>::infinity() : logit / temperature;
}

struct candidate_summary {
  float best = 0.0f;       // the largest score, score = logit / temperature (NaN as -inf)
  double total = 0.0;      // sum over the row of e^(score - best)
  std::int64_t count = 0;  // tokens with score >= best - window; more than capacity: not all sent
};

/// The host computation of backend::sampling_candidates_f32 (its contract is there): the
/// definition the device kernels are tested against.
status host_sampling_candidates(const float* x, std::int64_t rows, std::int64_t dim,
                                const float* temperature, float window, std::int32_t capacity,
                                candidate_summary* summaries, std::int32_t* ids, float* logits);

/// The arguments' contract, shared by every implementation; the message names what is wrong.
status check_sampling_candidates(const float* x, std::int64_t rows, std::int64_t dim,
                                 const float* temperature, float window, std::int32_t capacity,
                                 const candidate_summary* summaries, const std::int32_t* ids,
                                 const float* logits);

}  // namespace bastion::kernels
