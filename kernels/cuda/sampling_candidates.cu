#include "kernels/cuda/check.hpp"
#include "kernels/cuda/launch.hpp"
#include "kernels/cuda/sampling_candidates.hpp"

namespace bastion::kernels::cuda {
namespace {

constexpr int threads = 512;
constexpr int warps = threads / 32;

__device__ __forceinline__ float score_of(float logit, float temperature) {
  // __fdiv_rn: correctly rounded whatever the build's fast-math flags, so the host, which
  // divides the same way, sees the same scores.
  return isnan(logit) ? -INFINITY : __fdiv_rn(logit, temperature);
}

__device__ float block_max(float v, float* shared) {
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = shared[0];
  for (int w = 1; w < warps; ++w) v = fmaxf(v, shared[w]);
  __syncthreads();  // `shared` is reused by the caller's next reduction
  return v;
}

__device__ double block_sum(double v, double* shared) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = 0.0;
  for (int w = 0; w < warps; ++w) v += shared[w];
  return v;
}

// One block per row: the best score, then one pass for the denominator and the candidates.
__global__ void candidates_kernel(const float* __restrict__ x, std::int64_t dim,
                                  const float* __restrict__ temperature, float window, int capacity,
                                  float* __restrict__ best, double* __restrict__ total,
                                  long long* __restrict__ count, std::int32_t* __restrict__ ids,
                                  float* __restrict__ logits) {
  __shared__ float max_parts[warps];
  __shared__ double sum_parts[warps];
  __shared__ unsigned long long found;
  const std::int64_t row = blockIdx.x;
  const float t = temperature[row];
  if (!(t > 0.0f)) {  // the same for every thread of the block
    if (threadIdx.x == 0) {
      best[row] = 0.0f;
      total[row] = 0.0;
      count[row] = 0;
    }
    return;
  }
  if (threadIdx.x == 0) found = 0;
  const float* xr = x + row * dim;
  float m = -INFINITY;
  for (std::int64_t i = threadIdx.x; i < dim; i += threads) m = fmaxf(m, score_of(xr[i], t));
  m = block_max(m, max_parts);
  if (isinf(m)) {  // all -inf (nothing to draw) or a +inf score: the host needs the row
    if (threadIdx.x == 0) {
      best[row] = m;
      total[row] = 0.0;
      count[row] = 0;
    }
    return;
  }
  const float floor = m - window;
  double sum = 0.0;
  for (std::int64_t i = threadIdx.x; i < dim; i += threads) {
    const float s = score_of(xr[i], t);
    sum += exp(static_cast<double>(s) - static_cast<double>(m));
    if (s >= floor) {
      const unsigned long long slot = atomicAdd(&found, 1ull);
      if (slot < static_cast<unsigned long long>(capacity)) {
        ids[row * capacity + static_cast<std::int64_t>(slot)] = static_cast<std::int32_t>(i);
        logits[row * capacity + static_cast<std::int64_t>(slot)] = xr[i];
      }
    }
  }
  sum = block_sum(sum, sum_parts);  // its __syncthreads also orders every atomicAdd before
  if (threadIdx.x == 0) {
    best[row] = m;
    total[row] = sum;
    count[row] = static_cast<long long>(found);
  }
}

}  // namespace

status sampling_candidates_f32(const float* x, std::int64_t rows, std::int64_t dim,
                               const float* temperature, float window, std::int32_t capacity,
                               float* best, double* total, long long* count, std::int32_t* ids,
                               float* logits, cudaStream_t stream) {
  if (rows < 0 || dim <= 0 || capacity <= 0)
    return invalid("sampling_candidates_f32",
                   "a shape that is not rows >= 0, dim > 0, capacity > 0");
  if (rows > 0 && (!x || !temperature || !best || !total || !count || !ids || !logits))
    return invalid("sampling_candidates_f32", "null pointer");
  if (rows > 0x7fffffff || dim > 0x7fffffff)
    return invalid("sampling_candidates_f32", "more rows or a longer row than one launch covers");
  if (rows == 0) return status::ok();
  candidates_kernel<<<static_cast<unsigned>(rows), threads, 0, stream>>>(
      x, dim, temperature, window, capacity, best, total, count, ids, logits);
  BASTION_CUDA_CHECK(cudaGetLastError());
  return status::ok();
}

}  // namespace bastion::kernels::cuda
