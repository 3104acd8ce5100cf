#include "kernels/cuda/check.hpp"
#include "kernels/cuda/launch.hpp"
#include "kernels/cuda/softmax.hpp"

namespace bastion::kernels::cuda {
namespace {

constexpr int threads = 256;

// Block-wide reduction with `op`; every thread gets the result.
template <class Op>
__device__ float block_reduce(float v, Op op, float* shared) {
  for (int o = 16; o > 0; o /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // `shared` may still be read by a previous reduction
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = shared[0];
  for (int w = 1; w < threads / 32; ++w) v = op(v, shared[w]);
  return v;
}

__global__ void softmax_kernel(float* x, std::int64_t dim) {
  __shared__ float partial[threads / 32];
  float* xr = x + blockIdx.x * dim;
  float mx = -INFINITY;
  for (std::int64_t i = threadIdx.x; i < dim; i += threads) mx = fmaxf(mx, xr[i]);
  mx = block_reduce(
      mx, [](float a, float b) { return fmaxf(a, b); }, partial);
  float sum = 0.0f;
  for (std::int64_t i = threadIdx.x; i < dim; i += threads) {
    const float e = expf(xr[i] - mx);
    xr[i] = e;
    sum += e;
  }
  sum = block_reduce(
      sum, [](float a, float b) { return a + b; }, partial);
  const float inv = 1.0f / sum;
  for (std::int64_t i = threadIdx.x; i < dim; i += threads) xr[i] *= inv;
}

}  // namespace

status softmax_f32(float* x, std::int64_t rows, std::int64_t dim, cudaStream_t stream) {
  if (rows < 0 || dim < 0 || (rows * dim > 0 && !x))
    return invalid("softmax_f32", "null pointer or negative shape");
  if (rows > 0x7fffffff) return invalid("softmax_f32", "more rows than one launch covers");
  if (rows == 0 || dim == 0) return status::ok();
  softmax_kernel<<<static_cast<unsigned>(rows), threads, 0, stream>>>(x, dim);
  BASTION_CUDA_CHECK(cudaGetLastError());
  return status::ok();
}

}  // namespace bastion::kernels::cuda
