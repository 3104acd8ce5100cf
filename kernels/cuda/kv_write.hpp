#pragma once
// Stores a step's keys and values into their paged KV slots on the device.

#include "kernels/backend.hpp"

#include <cuda_runtime.h>

#include <cstdint>

namespace bastion::kernels::cuda {

/// backend::kv_write_f32 with device pointers. A slot outside the pool sets error_kv_slot in
/// *error_word and that token is not stored.
status kv_write_f32(const float* k, const float* v, const std::int32_t* slots, std::int64_t tokens,
                    const paged_kv_view& kv, unsigned* error_word, cudaStream_t stream);

}  // namespace bastion::kernels::cuda
