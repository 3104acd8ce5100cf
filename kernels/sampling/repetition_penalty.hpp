#pragma once
// The repetition penalty (the CTRL paper's, as Hugging Face applies it): every token already in
// a sequence's history has its logit moved towards "less likely" before the draw. The sampler
// applies it to a row on the host; a device backend applies it to the rows where they were
// computed (backend::repetition_penalty_f32), so that a penalised sequence needs neither its
// row of logits on the host nor a different draw: both apply the same rule, bit for bit.

#include "kernels/status.hpp"

#include <cstdint>

namespace bastion::kernels {

/// One logit under `penalty` (> 0): a positive logit divided by it, any other (negative, zero,
/// NaN) multiplied by it, one IEEE operation each (the CUDA kernel divides and multiplies with
/// round-to-nearest, denormals kept), so every implementation gives the same float.
inline float penalised_logit(float logit, float penalty) {
  return logit > 0.0f ? logit / penalty : logit * penalty;
}

/// The host computation of backend::repetition_penalty_f32 (its contract is there): the
/// definition the device kernels are tested against.
status host_repetition_penalty(float* x, std::int64_t rows, std::int64_t dim, const float* penalty,
                               const std::int32_t* token_begin, const std::int32_t* tokens);

/// The arguments' contract, shared by every implementation (it reads the host tables once:
/// each row's tokens must ascend strictly, so no token is penalised twice and a device's
/// threads never write one logit together); the message names what is wrong.
status check_repetition_penalty(const float* x, std::int64_t rows, std::int64_t dim,
                                const float* penalty, const std::int32_t* token_begin,
                                const std::int32_t* tokens);

}  // namespace bastion::kernels
