#pragma once
// The SiLU-gated MLP activation on the device.

#include "kernels/status.hpp"

#include <cuda_runtime.h>

#include <cstdint>

namespace bastion::kernels::cuda {

/// out[i] = silu(gate[i]) * up[i]; out may alias gate or up. Device pointers.
status silu_mul_f32(const float* gate, const float* up, float* out, std::int64_t n,
                    cudaStream_t stream);

}  // namespace bastion::kernels::cuda
