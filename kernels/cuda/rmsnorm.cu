#include "kernels/cuda/check.hpp"
#include "kernels/cuda/rmsnorm.hpp"

namespace bastion::kernels::cuda {
namespace {

constexpr int threads_per_block = 256;

__global__ void rmsnorm_kernel(const float* __restrict__ x, const float* __restrict__ weight,
                               float* __restrict__ y, std::int64_t dim, float eps) {
  const std::int64_t row = blockIdx.x;
  const float* xr = x + row * dim;
  float* yr = y + row * dim;

  float sum_sq = 0.0f;
  for (std::int64_t i = threadIdx.x; i < dim; i += blockDim.x) sum_sq += xr[i] * xr[i];
  for (int offset = warpSize / 2; offset > 0; offset /= 2)
    sum_sq += __shfl_down_sync(0xffffffffu, sum_sq, offset);

  __shared__ float warp_sums[threads_per_block / 32];
  __shared__ float scale;
  const int lane = threadIdx.x % warpSize;
  const int warp = threadIdx.x / warpSize;
  if (lane == 0) warp_sums[warp] = sum_sq;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (int w = 0; w < threads_per_block / 32; ++w) total += warp_sums[w];
    scale = rsqrtf(total / static_cast<float>(dim) + eps);
  }
  __syncthreads();
  for (std::int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * scale * weight[i];
}

}  // namespace

status rmsnorm_f32(const float* x, const float* weight, float* y, std::int64_t rows,
                   std::int64_t dim, float eps, cudaStream_t stream) {
  if (!x || !weight || !y) return {status_code::invalid_argument, "rmsnorm_f32: null pointer"};
  if (rows < 0 || dim <= 0 || rows > 0x7fffffff)
    return {status_code::invalid_argument, "rmsnorm_f32: bad shape"};
  if (rows == 0) return status::ok();
  rmsnorm_kernel<<<static_cast<unsigned>(rows), threads_per_block, 0, stream>>>(x, weight, y, dim,
                                                                                eps);
  BASTION_CUDA_CHECK(cudaGetLastError());
  return status::ok();
}

}  // namespace bastion::kernels::cuda
