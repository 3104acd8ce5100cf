#pragma once
// Causal attention over the paged KV cache on the device, with grouped-query heads: one block
// per (query token, head), its warps splitting the keys, each keeping an online softmax
// (running max, running sum, weighted value sum) that the block merges at the end. The same
// kernel serves prefill chunks (many tokens per sequence) and decode (one).

#include "kernels/backend.hpp"

#include <cuda_runtime.h>

#include <cstdint>

namespace bastion::kernels::cuda {

/// Largest head_dim the kernel takes (8 values per lane of a warp).
constexpr std::int64_t attention_head_dim_max = 256;

/// backend::paged_attention_f32 with every pointer (q, out, the KV storage and the batch's
/// tables) in device memory. A table entry that points outside the batch or the pool sets
/// error_attention_table in *error_word and that token's output is zero.
status paged_attention_f32(const float* q, const attention_batch& batch, const paged_kv_view& kv,
                           float* out, unsigned* error_word, cudaStream_t stream);

}  // namespace bastion::kernels::cuda
