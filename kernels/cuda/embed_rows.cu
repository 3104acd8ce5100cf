#include "kernels/cuda/block_formats.cuh"
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/embed_rows.hpp"
#include "kernels/cuda/launch.hpp"

namespace bastion::kernels::cuda {
namespace {

template <int Type>
__global__ void embed_kernel(const std::uint8_t* __restrict__ table, std::int64_t rows,
                             std::int64_t cols, std::uint64_t row_stride,
                             const std::int32_t* __restrict__ ids, float* __restrict__ out,
                             unsigned* error_word) {
  const std::int32_t id = ids[blockIdx.x];
  float* o = out + blockIdx.x * cols;
  if (id < 0 || id >= rows) {
    if (threadIdx.x == 0) atomicOr(error_word, error_embed_id);
    for (std::int64_t j = threadIdx.x; j < cols; j += blockDim.x) o[j] = 0.0f;
    return;
  }
  const std::uint8_t* row = table + static_cast<std::uint64_t>(id) * row_stride;
  const std::int64_t units = cols / 8;
  for (std::int64_t u = threadIdx.x; u < units; u += blockDim.x) {
    float v[8];
    load_unit<Type>(row, u, v);
#pragma unroll
    for (int i = 0; i < 8; ++i) o[u * 8 + i] = v[i];
  }
  for (std::int64_t j = units * 8 + threadIdx.x; j < cols; j += blockDim.x)
    o[j] = load_element<Type>(row, j);
}

template <int Type>
void launch(const weight_view& t, std::uint64_t stride, const std::int32_t* ids, std::int64_t n,
            float* out, unsigned* error_word, cudaStream_t stream) {
  embed_kernel<Type><<<static_cast<unsigned>(n), 128, 0, stream>>>(
      static_cast<const std::uint8_t*>(t.data), t.rows, t.cols, stride, ids, out, error_word);
}

}  // namespace

status embed_rows(const weight_view& table, const std::int32_t* ids, std::int64_t n, float* out,
                  unsigned* error_word, cudaStream_t stream) {
  const auto tr = traits_of(static_cast<std::uint32_t>(table.type));
  if (!tr)
    return {status_code::unsupported,
            "embed_rows: weight type " +
                std::string{ggml_type_name(static_cast<std::uint32_t>(table.type))} +
                " unsupported"};
  if (!table.data || table.rows < 0 || table.cols <= 0 || table.cols % tr->block_elems != 0)
    return invalid("embed_rows", "bad table");
  if (n < 0 || (n > 0 && (!ids || !out))) return invalid("embed_rows", "bad ids or output");
  if (n > 0x7fffffff) return invalid("embed_rows", "more rows than one launch covers");
  if (n == 0) return status::ok();
  const std::uint64_t stride = *row_bytes(table.type, static_cast<std::uint64_t>(table.cols));
  switch (table.type) {
    case tensor_type::f32:
      launch<type_f32>(table, stride, ids, n, out, error_word, stream);
      break;
    case tensor_type::f16:
      launch<type_f16>(table, stride, ids, n, out, error_word, stream);
      break;
    case tensor_type::bf16:
      launch<type_bf16>(table, stride, ids, n, out, error_word, stream);
      break;
    case tensor_type::q8_0:
      launch<type_q8_0>(table, stride, ids, n, out, error_word, stream);
      break;
    case tensor_type::q4_0:
      launch<type_q4_0>(table, stride, ids, n, out, error_word, stream);
      break;
    case tensor_type::q4_1:
      launch<type_q4_1>(table, stride, ids, n, out, error_word, stream);
      break;
  }
  BASTION_CUDA_CHECK(cudaGetLastError());
  return status::ok();
}

}  // namespace bastion::kernels::cuda
