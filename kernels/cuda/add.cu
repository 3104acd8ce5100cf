#include "kernels/cuda/add.hpp"
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/launch.hpp"

namespace bastion::kernels::cuda {
namespace {

__global__ void add_kernel(float* __restrict__ y, const float* __restrict__ x, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n;
       i += std::int64_t{gridDim.x} * blockDim.x)
    y[i] += x[i];
}

__global__ void add_bias_kernel(float* __restrict__ y, const float* __restrict__ bias,
                                std::int64_t n, std::int64_t dim) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n;
       i += std::int64_t{gridDim.x} * blockDim.x)
    y[i] += bias[i % dim];
}

}  // namespace

status add_f32(float* y, const float* x, std::int64_t n, cudaStream_t stream) {
  if (n < 0 || (n > 0 && (!x || !y))) return invalid("add_f32", "null pointer or negative n");
  if (n == 0) return status::ok();
  add_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(y, x, n);
  BASTION_CUDA_CHECK(cudaGetLastError());
  return status::ok();
}

status add_bias_f32(float* y, const float* bias, std::int64_t rows, std::int64_t dim,
                    cudaStream_t stream) {
  if (rows < 0 || dim < 0 || (rows * dim > 0 && (!y || !bias)))
    return invalid("add_bias_f32", "null pointer or negative shape");
  if (rows == 0 || dim == 0) return status::ok();
  add_bias_kernel<<<blocks_for(rows * dim, 256), 256, 0, stream>>>(y, bias, rows * dim, dim);
  BASTION_CUDA_CHECK(cudaGetLastError());
  return status::ok();
}

}  // namespace bastion::kernels::cuda
