#pragma once
// Sampling without sending rows of logits back: per row, the best score, the softmax
// denominator over the row and the tokens near the top (kernels/sampling/candidates.hpp), so
// a sampled sequence costs a few kilobytes of download instead of a row of vocab floats.

#include "kernels/status.hpp"

#include <cuda_runtime.h>

#include <cstdint>

namespace bastion::kernels::cuda {

/// For each row r of x [rows x dim] with temperature[r] > 0, scores s = x / temperature[r]
/// (IEEE division, as the host's; NaN as -inf): best[r] = max s, total[r] = sum of
/// e^(s - best) in double, count[r] = tokens with s >= best - window, and the first
/// min(count, capacity) of them (in no set order) in ids[r * capacity ...] with their raw
/// logits in logits[r * capacity ...]. Rows with temperature <= 0 get count 0. Every pointer
/// is device memory; dim > 0, capacity > 0.
status sampling_candidates_f32(const float* x, std::int64_t rows, std::int64_t dim,
                               const float* temperature, float window, std::int32_t capacity,
                               float* best, double* total, long long* count, std::int32_t* ids,
                               float* logits, cudaStream_t stream);

}  // namespace bastion::kernels::cuda
