#pragma once
// Greedy sampling on the device: the index of each row's largest value, so a greedy decode
// step downloads one int per sequence instead of a row of logits (vocab floats).

#include "kernels/status.hpp"

#include <cuda_runtime.h>

#include <cstdint>

namespace bastion::kernels::cuda {

/// out[r] = the lowest index i with x[r][i] == max of row r (std::max_element's choice, as the
/// CPU sampler's greedy path takes it). NaN entries are passed over; a row of NaNs gives 0.
/// x [rows x dim] and out [rows] are device pointers; dim > 0.
status argmax_rows_f32(const float* x, std::int64_t rows, std::int64_t dim, std::int32_t* out,
                       cudaStream_t stream);

}  // namespace bastion::kernels::cuda
