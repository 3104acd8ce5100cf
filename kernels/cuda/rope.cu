#include "kernels/cuda/check.hpp"
#include "kernels/cuda/error_bits.hpp"
#include "kernels/cuda/launch.hpp"
#include "kernels/cuda/rope.hpp"

namespace bastion::kernels::cuda {
namespace {

// One block per token; threads walk its (head, pair) grid. The angle is computed in double,
// as the CPU reference does, so long positions keep their precision.
__global__ void rope_kernel(float* x, const std::int32_t* __restrict__ positions,
                            std::int64_t heads, std::int64_t head_dim, std::int64_t rot_dim,
                            double log_base, bool adjacent, unsigned* error_word) {
  const std::int64_t t = blockIdx.x;
  const std::int32_t pos = positions[t];
  if (pos < 0) {
    if (threadIdx.x == 0) atomicOr(error_word, error_rope_position);
    return;
  }
  const std::int64_t half = rot_dim / 2;
  for (std::int64_t w = threadIdx.x; w < heads * half; w += blockDim.x) {
    const std::int64_t h = w / half, i = w % half;
    const double angle = static_cast<double>(pos) * exp(-2.0 * static_cast<double>(i) /
                                                        static_cast<double>(rot_dim) * log_base);
    double s = 0.0, c = 0.0;
    sincos(angle, &s, &c);
    const float cf = static_cast<float>(c), sf = static_cast<float>(s);
    float* xh = x + (t * heads + h) * head_dim;
    const std::int64_t a = adjacent ? 2 * i : i;
    const std::int64_t b = adjacent ? 2 * i + 1 : i + half;
    const float x0 = xh[a], x1 = xh[b];
    xh[a] = x0 * cf - x1 * sf;
    xh[b] = x0 * sf + x1 * cf;
  }
}

}  // namespace

status rope_f32(float* x, const std::int32_t* positions, std::int64_t tokens, std::int64_t heads,
                std::int64_t head_dim, const rope_params& rope, unsigned* error_word,
                cudaStream_t stream) {
  const char* op = "rope_f32";
  if (tokens < 0 || heads < 0 || head_dim < 0) return invalid(op, "negative shape");
  if (tokens > 0 && (!x || !positions)) return invalid(op, "null pointer");
  if (rope.rot_dim <= 0 || rope.rot_dim % 2 != 0 || rope.rot_dim > head_dim)
    return invalid(op, "rot_dim " + std::to_string(rope.rot_dim) +
                           " must be even and in (0, head_dim=" + std::to_string(head_dim) + "]");
  if (!(rope.base > 1.0f)) return invalid(op, "base must be > 1");
  if (tokens > 0x7fffffff) return invalid(op, "more tokens than one launch covers");
  if (tokens == 0 || heads == 0) return status::ok();
  rope_kernel<<<static_cast<unsigned>(tokens), 128, 0, stream>>>(
      x, positions, heads, head_dim, rope.rot_dim, std::log(static_cast<double>(rope.base)),
      rope.style == rope_style::adjacent_pairs, error_word);
  BASTION_CUDA_CHECK(cudaGetLastError());
  return status::ok();
}

}  // namespace bastion::kernels::cuda
