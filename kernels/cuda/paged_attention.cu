#include "kernels/cuda/check.hpp"
#include "kernels/cuda/error_bits.hpp"
#include "kernels/cuda/launch.hpp"
#include "kernels/cuda/paged_attention.hpp"

namespace bastion::kernels::cuda {
namespace {

constexpr int warps = 4;
constexpr int per_lane = static_cast<int>(attention_head_dim_max / 32);

struct tables {
  const std::int32_t* positions;
  const std::int32_t* token_seq;
  const std::int32_t* seq_block_begin;
  const std::int32_t* block_table;
  std::int64_t n_seqs;
};

__global__ void attention_kernel(const float* __restrict__ q, tables tab,
                                 const float* __restrict__ k_store,
                                 const float* __restrict__ v_store, std::int64_t pool_blocks,
                                 std::int64_t block_tokens, std::int64_t kv_dim,
                                 std::int64_t n_heads, std::int64_t group, std::int64_t head_dim,
                                 float scale, float* __restrict__ out, unsigned* error_word) {
  const std::int64_t t = blockIdx.x, h = blockIdx.y;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float* oh = out + (t * n_heads + h) * head_dim;

  const std::int32_t s = tab.token_seq[t];
  const std::int64_t pos = tab.positions[t];
  bool bad = s < 0 || s >= tab.n_seqs;
  std::int64_t first_block = 0, n_blocks = 0;
  if (!bad) {
    first_block = tab.seq_block_begin[s];
    n_blocks = tab.seq_block_begin[s + 1] - first_block;
    bad = pos < 0 || pos >= n_blocks * block_tokens;
  }
  if (bad) {
    if (threadIdx.x == 0) atomicOr(error_word, error_attention_table);
    for (std::int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) oh[d] = 0.0f;
    return;
  }

  // Lane `lane` owns dimensions lane, lane + 32, ... of the head.
  const float* qh = q + (t * n_heads + h) * head_dim;
  const std::int64_t kv_off = (h / group) * head_dim;
  float qr[per_lane], acc[per_lane];
#pragma unroll
  for (int i = 0; i < per_lane; ++i) {
    const std::int64_t d = lane + 32 * i;
    qr[i] = d < head_dim ? qh[d] : 0.0f;
    acc[i] = 0.0f;
  }
  float run_max = -INFINITY, run_sum = 0.0f;
  bool table_ok = true;
  for (std::int64_t j = warp; j <= pos; j += warps) {
    const std::int32_t block = tab.block_table[first_block + j / block_tokens];
    if (block < 0 || block >= pool_blocks) {
      table_ok = false;
      break;
    }
    const std::int64_t slot = block * block_tokens + j % block_tokens;
    const float* kj = k_store + slot * kv_dim + kv_off;
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < per_lane; ++i) {
      const std::int64_t d = lane + 32 * i;
      if (d < head_dim) dot += qr[i] * kj[d];
    }
    for (int o = 16; o > 0; o /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    const float score = dot * scale;
    const float new_max = fmaxf(run_max, score);
    const float correction = expf(run_max - new_max);  // 0 on the first key (exp(-inf))
    const float p = expf(score - new_max);
    run_sum = run_sum * correction + p;
    const float* vj = v_store + slot * kv_dim + kv_off;
#pragma unroll
    for (int i = 0; i < per_lane; ++i) {
      const std::int64_t d = lane + 32 * i;
      acc[i] = acc[i] * correction + (d < head_dim ? p * vj[d] : 0.0f);
    }
    run_max = new_max;
  }

  // Merge the warps' partial softmaxes.
  __shared__ float w_max[warps], w_sum[warps];
  __shared__ int w_ok[warps];
  __shared__ float w_acc[warps][attention_head_dim_max];
  if (lane == 0) {
    w_max[warp] = run_max;
    w_sum[warp] = run_sum;
    w_ok[warp] = table_ok ? 1 : 0;
  }
#pragma unroll
  for (int i = 0; i < per_lane; ++i) {
    const std::int64_t d = lane + 32 * i;
    if (d < head_dim) w_acc[warp][d] = acc[i];
  }
  __syncthreads();
  bool all_ok = true;
  float m = -INFINITY;
  for (int w = 0; w < warps; ++w) {
    all_ok = all_ok && w_ok[w] != 0;
    m = fmaxf(m, w_max[w]);
  }
  if (!all_ok) {
    if (threadIdx.x == 0) atomicOr(error_word, error_attention_table);
    for (std::int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) oh[d] = 0.0f;
    return;
  }
  float total = 0.0f, weight[warps];
  for (int w = 0; w < warps; ++w) {
    weight[w] = w_max[w] == -INFINITY ? 0.0f : expf(w_max[w] - m);  // a warp with no keys
    total += w_sum[w] * weight[w];
  }
  for (std::int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float o = 0.0f;
    for (int w = 0; w < warps; ++w) o += w_acc[w][d] * weight[w];
    oh[d] = o / total;
  }
}

}  // namespace

status paged_attention_f32(const float* q, const attention_batch& b, const paged_kv_view& kv,
                           float* out, unsigned* error_word, cudaStream_t stream) {
  const char* op = "paged_attention_f32";
  if (b.n_tokens < 0 || b.n_heads < 0 || b.head_dim <= 0) return invalid(op, "bad shape");
  if (b.n_tokens == 0 || b.n_heads == 0) return status::ok();
  if (!q || !out || !kv.k || !kv.v) return invalid(op, "null pointer");
  if (b.n_kv_heads <= 0 || b.n_heads % b.n_kv_heads != 0)
    return invalid(op, "n_kv_heads must divide n_heads");
  if (kv.kv_dim != b.n_kv_heads * b.head_dim || kv.block_tokens <= 0)
    return invalid(op, "KV view does not match the heads");
  if (!b.positions || !b.token_seq || !b.seq_block_begin || !b.block_table)
    return invalid(op, "missing batch tables");
  if (b.head_dim > attention_head_dim_max)
    return {status_code::unsupported, std::string{op} + ": head_dim " + std::to_string(b.head_dim) +
                                          " exceeds " + std::to_string(attention_head_dim_max)};
  if (b.n_tokens > 0x7fffffff || b.n_heads > 65535)
    return invalid(op, "more tokens or heads than one launch covers");
  const tables tab{b.positions, b.token_seq, b.seq_block_begin, b.block_table, b.n_seqs};
  const dim3 grid{static_cast<unsigned>(b.n_tokens), static_cast<unsigned>(b.n_heads)};
  attention_kernel<<<grid, warps * 32, 0, stream>>>(q, tab, kv.k, kv.v, kv.blocks, kv.block_tokens,
                                                    kv.kv_dim, b.n_heads, b.n_heads / b.n_kv_heads,
                                                    b.head_dim, b.scale, out, error_word);
  BASTION_CUDA_CHECK(cudaGetLastError());
  return status::ok();
}

}  // namespace bastion::kernels::cuda
