#pragma once
// RMSNorm on the device: one block per row, warp-shuffle reduction of the sum of squares.

#include "kernels/status.hpp"

#include <cuda_runtime.h>

#include <cstdint>

namespace bastion::kernels::cuda {

/// y = x / sqrt(mean(x^2) + eps) * weight per row; x, weight, y are device pointers.
status rmsnorm_f32(const float* x, const float* weight, float* y, std::int64_t rows,
                   std::int64_t dim, float eps, cudaStream_t stream);

}  // namespace bastion::kernels::cuda
