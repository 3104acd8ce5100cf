#include "kernels/cuda/check.hpp"
#include "kernels/cuda/launch.hpp"
#include "kernels/cuda/repetition_penalty.hpp"

namespace bastion::kernels::cuda {
namespace {

// A row's history holds a few hundred to a few thousand distinct tokens.
constexpr int threads = 256;

// One block per row, its threads over the row's tokens (distinct, so no write races).
__global__ void repetition_penalty_kernel(float* __restrict__ x, std::int64_t dim,
                                          const float* __restrict__ penalty,
                                          const std::int32_t* __restrict__ token_begin,
                                          const std::int32_t* __restrict__ tokens) {
  const std::int64_t row = blockIdx.x;
  const float p = penalty[row];
  float* xr = x + row * dim;
  const std::int32_t end = token_begin[row + 1];
  for (std::int32_t i = token_begin[row] + static_cast<std::int32_t>(threadIdx.x); i < end;
       i += threads) {
    const std::int32_t t = tokens[i];
    if (t < 0 || t >= dim) continue;  // as the sampler passes over ids outside the vocabulary
    const float l = xr[t];
    // __fdiv_rn / __fmul_rn: correctly rounded whatever -prec-div and -fmad say, so the
    // host's penalised_logit gives the same float (denormals too: this build has no -ftz).
    xr[t] = l > 0.0f ? __fdiv_rn(l, p) : __fmul_rn(l, p);
  }
}

}  // namespace

status repetition_penalty_f32(float* x, std::int64_t rows, std::int64_t dim, const float* penalty,
                              const std::int32_t* token_begin, const std::int32_t* tokens,
                              cudaStream_t stream) {
  if (rows < 0 || dim <= 0)
    return invalid("repetition_penalty_f32", "a shape that is not rows >= 0, dim > 0");
  if (rows > 0 && (!x || !penalty || !token_begin || !tokens))
    return invalid("repetition_penalty_f32", "null pointer");
  if (rows > 0x7fffffff)
    return invalid("repetition_penalty_f32", "more rows than one launch covers");
  if (rows == 0) return status::ok();
  repetition_penalty_kernel<<<static_cast<unsigned>(rows), threads, 0, stream>>>(
      x, dim, penalty, token_begin, tokens);
  BASTION_CUDA_CHECK(cudaGetLastError());
  return status::ok();
}

}  // namespace bastion::kernels::cuda
