#pragma once
// The repetition penalty on the device, in place on the step's logits, so a penalised sequence
// is sampled from its candidates (or its argmax) like any other instead of sending its whole
// row of logits to the host (kernels/sampling/repetition_penalty.hpp).

#include "kernels/status.hpp"

#include <cuda_runtime.h>

#include <cstdint>

namespace bastion::kernels::cuda {

/// For each row r of x [rows x dim], each token t of tokens[token_begin[r] .. token_begin[r+1])
/// with 0 <= t < dim: x[r][t] = x[r][t] > 0 ? x[r][t] / penalty[r] : x[r][t] * penalty[r],
/// with round-to-nearest division and multiplication (the host's penalised_logit, bit for bit,
/// as long as the build does not flush denormals: no -ftz / --use_fast_math). Every pointer is
/// device memory; dim > 0; the tokens of
/// a row are distinct (backend::repetition_penalty_f32 checks it on the host: no two threads
/// write one logit).
status repetition_penalty_f32(float* x, std::int64_t rows, std::int64_t dim, const float* penalty,
                              const std::int32_t* token_begin, const std::int32_t* tokens,
                              cudaStream_t stream);

}  // namespace bastion::kernels::cuda
