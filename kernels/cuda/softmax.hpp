#pragma once
// Row softmax on the device: one block per row, block-wide max and sum reductions.

#include "kernels/status.hpp"

#include <cuda_runtime.h>

#include <cstdint>

namespace bastion::kernels::cuda {

/// Per row of x [rows x dim], in place: x = exp(x - max) / sum(exp(x - max)). Device pointer.
status softmax_f32(float* x, std::int64_t rows, std::int64_t dim, cudaStream_t stream);

}  // namespace bastion::kernels::cuda
