#pragma once
// Element types of model tensors, numbered as GGUF (ggml) numbers them, with their block
// layout. A quantized type stores `block_elems` values in `block_bytes` bytes.

#include "kernels/status.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace bastion::kernels {

enum class tensor_type : std::uint32_t {
  f32 = 0,
  f16 = 1,
  q4_0 = 2,
  q4_1 = 3,
  q8_0 = 8,
  bf16 = 30,
};

struct type_traits {
  std::string_view name;
  std::uint32_t block_elems;
  std::uint32_t block_bytes;
};

/// Traits of a type this build can execute; nullopt for any other GGUF type number.
std::optional<type_traits> traits_of(std::uint32_t ggml_type) noexcept;

/// The GGUF name of any ggml type number (also ones we cannot execute, for error messages).
std::string_view ggml_type_name(std::uint32_t ggml_type) noexcept;

/// Bytes for `n_elements` of `type`; nullopt if `n_elements` is not a whole number of blocks
/// or the size overflows.
std::optional<std::uint64_t> row_bytes(tensor_type type, std::uint64_t n_elements) noexcept;

/// Converts `n` elements of `type` at `src` to F32. REQUIRES: n is a multiple of the type's
/// block size and src holds row_bytes(type, n) bytes.
void dequantize_row(tensor_type type, const void* src, float* dst, std::int64_t n) noexcept;

/// IEEE half and bfloat16 conversions (no F16C needed).
float half_to_float(std::uint16_t h) noexcept;
std::uint16_t float_to_half(float f) noexcept;
float bf16_to_float(std::uint16_t b) noexcept;
std::uint16_t float_to_bf16(float f) noexcept;

}  // namespace bastion::kernels
