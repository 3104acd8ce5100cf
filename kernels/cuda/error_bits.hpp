#pragma once
// The CUDA backend's sticky error word (host and device code).

namespace bastion::kernels::cuda {

/// Bits of the backend's sticky error word: a kernel that meets an index outside its table sets
/// one (and writes zeros); the backend reports it at the next synchronize or download.
constexpr unsigned error_embed_id = 1u << 0;
constexpr unsigned error_rope_position = 1u << 1;
constexpr unsigned error_kv_slot = 1u << 2;
constexpr unsigned error_attention_table = 1u << 3;

}  // namespace bastion::kernels::cuda
