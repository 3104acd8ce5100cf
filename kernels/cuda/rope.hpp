#pragma once
// Rotary position embedding on the device, both pairings (rope_style).

#include "kernels/backend.hpp"

#include <cuda_runtime.h>

#include <cstdint>

namespace bastion::kernels::cuda {

/// Rotates x [tokens x heads x head_dim] in place (backend::rope_f32); x and positions are
/// device pointers. A negative position sets error_rope_position in *error_word and leaves
/// that token as it was.
status rope_f32(float* x, const std::int32_t* positions, std::int64_t tokens, std::int64_t heads,
                std::int64_t head_dim, const rope_params& rope, unsigned* error_word,
                cudaStream_t stream);

}  // namespace bastion::kernels::cuda
