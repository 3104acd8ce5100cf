#include "kernels/cuda/check.hpp"
#include "kernels/cuda/error_bits.hpp"
#include "kernels/cuda/kv_write.hpp"
#include "kernels/cuda/launch.hpp"

namespace bastion::kernels::cuda {
namespace {

__global__ void kv_write_kernel(const float* __restrict__ k, const float* __restrict__ v,
                                const std::int32_t* __restrict__ slots, std::int64_t slot_count,
                                std::int64_t kv_dim, float* __restrict__ k_store,
                                float* __restrict__ v_store, unsigned* error_word) {
  const std::int64_t t = blockIdx.x;
  const std::int32_t slot = slots[t];
  if (slot < 0 || slot >= slot_count) {
    if (threadIdx.x == 0) atomicOr(error_word, error_kv_slot);
    return;
  }
  for (std::int64_t i = threadIdx.x; i < kv_dim; i += blockDim.x) {
    k_store[slot * kv_dim + i] = k[t * kv_dim + i];
    v_store[slot * kv_dim + i] = v[t * kv_dim + i];
  }
}

}  // namespace

status kv_write_f32(const float* k, const float* v, const std::int32_t* slots, std::int64_t tokens,
                    const paged_kv_view& kv, unsigned* error_word, cudaStream_t stream) {
  const char* op = "kv_write_f32";
  if (tokens < 0 || kv.kv_dim <= 0) return invalid(op, "bad shape");
  if (tokens > 0 && (!k || !v || !slots)) return invalid(op, "null pointer");
  if (tokens > 0 && (!kv.k || !kv.v)) return invalid(op, "no KV storage");
  if (tokens > 0x7fffffff) return invalid(op, "more tokens than one launch covers");
  if (tokens == 0) return status::ok();
  kv_write_kernel<<<static_cast<unsigned>(tokens), 128, 0, stream>>>(
      k, v, slots, kv.blocks * kv.block_tokens, kv.kv_dim, kv.k, kv.v, error_word);
  BASTION_CUDA_CHECK(cudaGetLastError());
  return status::ok();
}

}  // namespace bastion::kernels::cuda
