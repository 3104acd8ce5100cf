#include "kernels/cuda/check.hpp"
#include "kernels/cuda/launch.hpp"
#include "kernels/cuda/silu_mul.hpp"

namespace bastion::kernels::cuda {
namespace {

// No __restrict__: out may alias gate or up (each element is read before it is written).
__global__ void silu_mul_kernel(const float* gate, const float* up, float* out, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n;
       i += std::int64_t{gridDim.x} * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

}  // namespace

status silu_mul_f32(const float* gate, const float* up, float* out, std::int64_t n,
                    cudaStream_t stream) {
  if (n < 0 || (n > 0 && (!gate || !up || !out)))
    return invalid("silu_mul_f32", "null pointer or negative n");
  if (n == 0) return status::ok();
  silu_mul_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(gate, up, out, n);
  BASTION_CUDA_CHECK(cudaGetLastError());
  return status::ok();
}

}  // namespace bastion::kernels::cuda
