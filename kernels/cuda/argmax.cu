#include "kernels/cuda/argmax.hpp"
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/launch.hpp"

#include <cstdint>

namespace bastion::kernels::cuda {
namespace {

constexpr int threads = 512;

// (value, index) pairs: the larger value wins, the lower index on equal values.
struct best {
  float value;
  std::int64_t index;
};

__device__ __forceinline__ best better(best a, best b) {
  if (b.value > a.value || (b.value == a.value && b.index < a.index)) return b;
  return a;
}

__global__ void argmax_kernel(const float* __restrict__ x, std::int64_t dim,
                              std::int32_t* __restrict__ out) {
  __shared__ float values[threads / 32];
  __shared__ std::int64_t indices[threads / 32];
  const float* xr = x + blockIdx.x * dim;
  // -inf with an index past the row: loses to any real value, and to -inf at a real index.
  best b{-INFINITY, dim};
  for (std::int64_t i = threadIdx.x; i < dim; i += threads) {
    const float v = xr[i];
    if (v > b.value || (v == b.value && i < b.index)) b = {v, i};  // NaN compares false
  }
  for (int o = 16; o > 0; o /= 2) {
    const best other{__shfl_xor_sync(0xffffffffu, b.value, o),
                     __shfl_xor_sync(0xffffffffu, b.index, o)};
    b = better(b, other);
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) {
    values[warp] = b.value;
    indices[warp] = b.index;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < threads / 32; ++w) b = better(b, {values[w], indices[w]});
    out[blockIdx.x] = static_cast<std::int32_t>(b.index < dim ? b.index : 0);
  }
}

}  // namespace

status argmax_rows_f32(const float* x, std::int64_t rows, std::int64_t dim, std::int32_t* out,
                       cudaStream_t stream) {
  if (rows < 0 || dim <= 0 || (rows > 0 && (!x || !out)))
    return invalid("argmax_rows_f32", "null pointer or a shape that is not rows >= 0, dim > 0");
  if (rows > 0x7fffffff || dim > 0x7fffffff)
    return invalid("argmax_rows_f32", "more rows or a longer row than one launch covers");
  if (rows == 0) return status::ok();
  argmax_kernel<<<static_cast<unsigned>(rows), threads, 0, stream>>>(x, dim, out);
  BASTION_CUDA_CHECK(cudaGetLastError());
  return status::ok();
}

}  // namespace bastion::kernels::cuda
