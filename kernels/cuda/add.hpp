#pragma once
// The residual add and the bias add on the device.

#include "kernels/status.hpp"

#include <cuda_runtime.h>

#include <cstdint>

namespace bastion::kernels::cuda {

/// y[i] += x[i] for i < n. Device pointers.
status add_f32(float* y, const float* x, std::int64_t n, cudaStream_t stream);

/// y[r][i] += bias[i] for every row r of y [rows x dim]. Device pointers.
status add_bias_f32(float* y, const float* bias, std::int64_t rows, std::int64_t dim,
                    cudaStream_t stream);

}  // namespace bastion::kernels::cuda
