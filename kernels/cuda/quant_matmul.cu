#include "kernels/cuda/block_formats.cuh"
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/gemv_units.cuh"
#include "kernels/cuda/launch.hpp"
#include "kernels/cuda/quant_matmul.hpp"

#include <cuda_bf16.h>

namespace bastion::kernels::cuda {
namespace {

constexpr int gemv_warps = 8;
constexpr int fast_warps = 4;
static_assert(gemv_rows_max == 8, "launch_gemv instantiates the fast kernel for m up to 8");

// The fast path (gemv_units.cuh): each warp takes R consecutive weight rows; lane l takes B
// consecutive units at a time (B = 4 is one whole quant block: the block's scale and bytes are
// read once for its 32 elements), lane steps l, l + 32, ... The lane's elements of each row of
// x are loaded once (16-byte loads) and used for all R weight rows, so x costs 1/R of the
// on-chip traffic it would with one row per warp (x is F32: 4 bytes an element against 0.56
// for Q4_0 weights). U lane steps are unrolled so that their loads are in flight together.
// Each unit's products are summed first and scaled by d once (F32 throughout, so the result
// differs from the CPU's dequantize-then-dot only by rounding). M: most rows of x; m <= M used.
template <int Type, int M, int R, int B, int U>
__global__ void __launch_bounds__(fast_warps * 32)
    gemv_fast_kernel(const float* __restrict__ x, const std::uint8_t* __restrict__ w,
                     float* __restrict__ y, std::int64_t n, std::int64_t k,
                     std::uint64_t row_stride, int m) {
  const int lane = threadIdx.x % 32;
  const std::int64_t row0 = (blockIdx.x * std::int64_t{fast_warps} + threadIdx.x / 32) * R;
  if (row0 >= n) return;
  const std::uint8_t* wr[R];
#pragma unroll
  for (int r = 0; r < R; ++r)  // rows past n re-read the last row; their sums are dropped
    wr[r] = w + static_cast<std::uint64_t>(row0 + r < n ? row0 + r : n - 1) * row_stride;
  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int i = 0; i < M; ++i) acc[r][i] = 0.0f;
  // 32-bit unit indices (fast_path_fits keeps rows under 2^31 bytes): the index arithmetic is
  // a good part of each unit's instructions.
  const int units = static_cast<int>(k / 8);
  const int steps = (units + B - 1) / B;
#pragma unroll U
  for (int t = lane; t < steps; t += 32) {
#pragma unroll
    for (int bu = 0; bu < B; ++bu) {
      const int u = t * B + bu;
      if (B > 1 && u >= units) continue;
      float xv[M][8], xsum[M];
#pragma unroll
      for (int i = 0; i < M; ++i) {
        xsum[i] = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) xv[i][e] = 0.0f;
        if (i < m) {
          const auto* xp = reinterpret_cast<const float4*>(x + i * k) + u * 2;
          const float4 a = __ldg(xp), b = __ldg(xp + 1);
          xv[i][0] = a.x, xv[i][1] = a.y, xv[i][2] = a.z, xv[i][3] = a.w;
          xv[i][4] = b.x, xv[i][5] = b.y, xv[i][6] = b.z, xv[i][7] = b.w;
          if constexpr (Type == type_q4_1)
#pragma unroll
            for (int e = 0; e < 8; ++e) xsum[i] += xv[i][e];
        }
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        float q[8], d, mo;
        load_unit_fast<Type>(wr[r], u, q, d, mo);
#pragma unroll
        for (int i = 0; i < M; ++i) {
          if (i < m) {
            float sum = 0.0f;
#pragma unroll
            for (int e = 0; e < 8; ++e) sum = fmaf(xv[i][e], q[e], sum);
            if constexpr (unit_scaled<Type>) {
              acc[r][i] = fmaf(d, sum, acc[r][i]);
              if constexpr (Type == type_q4_1) acc[r][i] = fmaf(mo, xsum[i], acc[r][i]);
            } else {
              acc[r][i] += sum;
            }
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int i = 0; i < M; ++i) {
      float v = acc[r][i];
      for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0 && i < m && row0 + r < n) y[i * n + row0 + r] = v;
    }
  }
}

// One warp per weight row; lane l takes units l, l + 32, ... of the row. M is the most rows of
// x this instantiation handles; m <= M are used.
template <int Type, int M>
__global__ void gemv_kernel(const float* __restrict__ x, const std::uint8_t* __restrict__ w,
                            float* __restrict__ y, std::int64_t n, std::int64_t k,
                            std::uint64_t row_stride, int m) {
  const int lane = threadIdx.x % 32;
  const std::int64_t row = blockIdx.x * std::int64_t{gemv_warps} + threadIdx.x / 32;
  if (row >= n) return;
  const std::uint8_t* wr = w + static_cast<std::uint64_t>(row) * row_stride;
  float acc[M];
#pragma unroll
  for (int i = 0; i < M; ++i) acc[i] = 0.0f;
  const std::int64_t units = k / 8;
  for (std::int64_t u = lane; u < units; u += 32) {
    float wv[8];
    load_unit<Type>(wr, u, wv);
#pragma unroll
    for (int i = 0; i < M; ++i) {
      if (i < m) {
        const float* xi = x + i * k + u * 8;
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[i] += wv[e] * xi[e];
      }
    }
  }
  for (std::int64_t j = units * 8 + lane; j < k; j += 32) {
    const float wj = load_element<Type>(wr, j);
#pragma unroll
    for (int i = 0; i < M; ++i)
      if (i < m) acc[i] += wj * x[i * k + j];
  }
#pragma unroll
  for (int i = 0; i < M; ++i) {
    float v = acc[i];
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0 && i < m) y[i * n + row] = v;
  }
}

template <int Type, int M, int R, int B, int U>
void launch_fast(const float* x, const weight_view& w, std::uint64_t stride, float* y,
                 std::int64_t m, cudaStream_t stream) {
  const std::int64_t rows_per_block = std::int64_t{fast_warps} * R;
  const auto blocks = static_cast<unsigned>((w.rows + rows_per_block - 1) / rows_per_block);
  gemv_fast_kernel<Type, M, R, B, U><<<blocks, fast_warps * 32, 0, stream>>>(
      x, static_cast<const std::uint8_t*>(w.data), y, w.rows, w.cols, stride, static_cast<int>(m));
}

// One variant's shape (R rows per warp, B units per lane step) for every m: more rows of x
// hold more of them in registers, so m > 1 unrolls no further.
template <int Type, int R, int B, int U>
void launch_variant(const float* x, const weight_view& w, std::uint64_t stride, float* y,
                    std::int64_t m, cudaStream_t stream) {
  if (m == 1)
    launch_fast<Type, 1, R, B, U>(x, w, stride, y, m, stream);
  else if (m <= 4)
    launch_fast<Type, 4, R, B, 1>(x, w, stride, y, m, stream);
  else
    launch_fast<Type, 8, R, B, 1>(x, w, stride, y, m, stream);
}

// The fast path needs whole units, x rows on 16-byte boundaries and rows aligned as
// gemv_units.cuh requires; anything else takes the byte-load kernel below.
bool fast_path_fits(const float* x, const weight_view& w, std::uint64_t stride) {
  const auto aligned = [](const void* p, std::uint64_t a) {
    return reinterpret_cast<std::uintptr_t>(p) % a == 0;
  };
  const bool quant =
      w.type == tensor_type::q8_0 || w.type == tensor_type::q4_0 || w.type == tensor_type::q4_1;
  const std::uint64_t row_align = quant ? 2 : 16;
  // Rows under 2^31 bytes: the kernel's in-row offsets are 32-bit.
  return w.cols % 8 == 0 && aligned(x, 16) && aligned(w.data, row_align) &&
         stride % row_align == 0 && stride < (std::uint64_t{1} << 31);
}

template <int Type>
void launch_gemv(const float* x, const weight_view& w, std::uint64_t stride, float* y,
                 std::int64_t m, int variant, cudaStream_t stream) {
  if (variant >= 0 && fast_path_fits(x, w, stride)) {
    switch (variant) {  // gemv_variant_names lists them
      case 0:
        launch_variant<Type, 2, 1, 4>(x, w, stride, y, m, stream);
        return;
      case 1:
        launch_variant<Type, 4, 1, 2>(x, w, stride, y, m, stream);
        return;
      case 2:
        launch_variant<Type, 2, 4, 1>(x, w, stride, y, m, stream);
        return;
      case 3:
        launch_variant<Type, 1, 4, 2>(x, w, stride, y, m, stream);
        return;
      default:
        launch_variant<Type, 1, 1, 4>(x, w, stride, y, m, stream);
        return;
    }
  }
  const auto blocks = static_cast<unsigned>((w.rows + gemv_warps - 1) / gemv_warps);
  const auto* data = static_cast<const std::uint8_t*>(w.data);
  if (m == 1)
    gemv_kernel<Type, 1>
        <<<blocks, gemv_warps * 32, 0, stream>>>(x, data, y, w.rows, w.cols, stride, 1);
  else
    gemv_kernel<Type, gemv_rows_max><<<blocks, gemv_warps * 32, 0, stream>>>(
        x, data, y, w.rows, w.cols, stride, static_cast<int>(m));
}

template <int Type>
__global__ void dequantize_kernel(const std::uint8_t* __restrict__ w, std::uint64_t row_stride,
                                  std::int64_t rows, std::int64_t k, __half* __restrict__ out) {
  const std::int64_t units_per_row = k / 8, units = rows * units_per_row;
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < units;
       i += std::int64_t{gridDim.x} * blockDim.x) {
    const std::int64_t r = i / units_per_row, u = i % units_per_row;
    float v[8];
    load_unit<Type>(w + static_cast<std::uint64_t>(r) * row_stride, u, v);
    __half* o = out + r * k + u * 8;
#pragma unroll
    for (int e = 0; e < 8; ++e) o[e] = __float2half_rn(v[e]);
  }
}

__global__ void convert_kernel(const float* __restrict__ x, std::int64_t n, void* out,
                               bool to_bf16) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n;
       i += std::int64_t{gridDim.x} * blockDim.x) {
    if (to_bf16)
      static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16_rn(x[i]);
    else
      static_cast<__half*>(out)[i] = __float2half_rn(x[i]);
  }
}

}  // namespace

status gemv_rows(const float* x, const weight_view& w, float* y, std::int64_t m,
                 cudaStream_t stream) {
  return gemv_rows_variant(x, w, y, m, gemv_default_variant(w.type, m), stream);
}

int gemv_default_variant(tensor_type type, std::int64_t m) {
  // From the H200 sweep (bench/cuda_kernels_bench, 8192 x 8192, fractions of memcpy):
  // m = 1: "R1 B1 U4" q4_0 0.29, q4_1 0.26, q8_0 0.53, f16 0.81; "R2 B1 U4" 0.25, 0.26, 0.47,
  // 0.90. m = 8: "R2 B1" is best or within noise for every type (q4_0 0.10, q8_0 0.18, f16
  // 0.38); "R1 B1" halves that. Whole blocks per lane (B4) lost everywhere.
  const bool quant =
      type == tensor_type::q8_0 || type == tensor_type::q4_0 || type == tensor_type::q4_1;
  return m == 1 && quant ? 4 : 0;
}

status gemv_rows_variant(const float* x, const weight_view& w, float* y, std::int64_t m,
                         int variant, cudaStream_t stream) {
  if (variant < -1 || variant >= gemv_variants)
    return invalid("gemv_rows", "variant " + std::to_string(variant) + " is not -1 .. " +
                                    std::to_string(gemv_variants - 1));
  const auto tr = traits_of(static_cast<std::uint32_t>(w.type));
  if (!tr) return {status_code::unsupported, "gemv_rows: weight type unsupported"};
  if (!x || !w.data || !y) return invalid("gemv_rows", "null pointer");
  if (m <= 0 || m > gemv_rows_max || w.rows < 0 || w.cols <= 0 || w.cols % tr->block_elems != 0)
    return invalid("gemv_rows", "bad shape");
  if (w.rows == 0) return status::ok();
  if (w.rows > std::int64_t{gemv_warps} * 0x7fffffff) return invalid("gemv_rows", "too many rows");
  const std::uint64_t stride = *row_bytes(w.type, static_cast<std::uint64_t>(w.cols));
  switch (w.type) {
    case tensor_type::f32:
      launch_gemv<type_f32>(x, w, stride, y, m, variant, stream);
      break;
    case tensor_type::f16:
      launch_gemv<type_f16>(x, w, stride, y, m, variant, stream);
      break;
    case tensor_type::bf16:
      launch_gemv<type_bf16>(x, w, stride, y, m, variant, stream);
      break;
    case tensor_type::q8_0:
      launch_gemv<type_q8_0>(x, w, stride, y, m, variant, stream);
      break;
    case tensor_type::q4_0:
      launch_gemv<type_q4_0>(x, w, stride, y, m, variant, stream);
      break;
    case tensor_type::q4_1:
      launch_gemv<type_q4_1>(x, w, stride, y, m, variant, stream);
      break;
  }
  BASTION_CUDA_CHECK(cudaGetLastError());
  return status::ok();
}

status dequantize_to_f16(const weight_view& w, std::int64_t row_begin, std::int64_t rows,
                         __half* out, cudaStream_t stream) {
  if (!w.data || !out) return invalid("dequantize_to_f16", "null pointer");
  if (row_begin < 0 || rows < 0 || row_begin + rows > w.rows || w.cols % 32 != 0)
    return invalid("dequantize_to_f16", "rows outside the weight or cols not whole blocks");
  if (rows == 0) return status::ok();
  const std::uint64_t stride = *row_bytes(w.type, static_cast<std::uint64_t>(w.cols));
  const auto* src =
      static_cast<const std::uint8_t*>(w.data) + static_cast<std::uint64_t>(row_begin) * stride;
  const unsigned blocks = blocks_for(rows * (w.cols / 8), 256);
  switch (w.type) {
    case tensor_type::q8_0:
      dequantize_kernel<type_q8_0><<<blocks, 256, 0, stream>>>(src, stride, rows, w.cols, out);
      break;
    case tensor_type::q4_0:
      dequantize_kernel<type_q4_0><<<blocks, 256, 0, stream>>>(src, stride, rows, w.cols, out);
      break;
    case tensor_type::q4_1:
      dequantize_kernel<type_q4_1><<<blocks, 256, 0, stream>>>(src, stride, rows, w.cols, out);
      break;
    default:
      return {status_code::unsupported, "dequantize_to_f16: not a quantized type"};
  }
  BASTION_CUDA_CHECK(cudaGetLastError());
  return status::ok();
}

status convert_f32(const float* x, std::int64_t n, void* out, bool to_bf16, cudaStream_t stream) {
  if (n < 0 || (n > 0 && (!x || !out))) return invalid("convert_f32", "null pointer");
  if (n == 0) return status::ok();
  convert_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(x, n, out, to_bf16);
  BASTION_CUDA_CHECK(cudaGetLastError());
  return status::ok();
}

}  // namespace bastion::kernels::cuda
