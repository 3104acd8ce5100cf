#include "kernels/quant/tensor_type.hpp"

#include <cstring>
#include <limits>

namespace bastion::kernels {

std::optional<type_traits> traits_of(std::uint32_t ggml_type) noexcept {
  switch (static_cast<tensor_type>(ggml_type)) {
    case tensor_type::f32:
      return type_traits{"F32", 1, 4};
    case tensor_type::f16:
      return type_traits{"F16", 1, 2};
    case tensor_type::bf16:
      return type_traits{"BF16", 1, 2};
    case tensor_type::q4_0:
      return type_traits{"Q4_0", 32, 18};  // f16 scale + 16 nibble bytes
    case tensor_type::q4_1:
      return type_traits{"Q4_1", 32, 20};  // f16 scale, f16 min, 16 bytes
    case tensor_type::q8_0:
      return type_traits{"Q8_0", 32, 34};  // f16 scale + 32 int8
  }
  return std::nullopt;
}

std::string_view ggml_type_name(std::uint32_t t) noexcept {
  static constexpr std::string_view names[] = {
      "F32",     "F16",    "Q4_0",    "Q4_1",  "Q4_2(removed)", "Q4_3(removed)", "Q5_0",  "Q5_1",
      "Q8_0",    "Q8_1",   "Q2_K",    "Q3_K",  "Q4_K",          "Q5_K",          "Q6_K",  "Q8_K",
      "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL",        "IQ3_S",         "IQ2_S", "IQ4_XS",
      "I8",      "I16",    "I32",     "I64",   "F64",           "IQ1_M",         "BF16"};
  if (t < std::size(names)) return names[t];
  return "unknown";
}

std::optional<std::uint64_t> row_bytes(tensor_type type, std::uint64_t n_elements) noexcept {
  auto tr = traits_of(static_cast<std::uint32_t>(type));
  if (!tr || n_elements % tr->block_elems != 0) return std::nullopt;
  const std::uint64_t blocks = n_elements / tr->block_elems;
  if (blocks > std::numeric_limits<std::uint64_t>::max() / tr->block_bytes) return std::nullopt;
  return blocks * tr->block_bytes;
}

float half_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal half: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf or nan
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

std::uint16_t float_to_half(float f) noexcept {
  std::uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::int32_t exp = static_cast<std::int32_t>((x >> 23) & 0xffu) - 127 + 15;
  std::uint32_t mant = x & 0x7fffffu;
  if (((x >> 23) & 0xffu) == 0xffu)  // inf / nan
    return static_cast<std::uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
  if (exp >= 0x1f) return static_cast<std::uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (exp <= 0) {                                                      // subnormal or zero
    if (exp < -10) return static_cast<std::uint16_t>(sign);
    mant |= 0x800000u;
    const int shift = 14 - exp;
    std::uint32_t half_mant = mant >> shift;
    const std::uint32_t rest = mant & ((1u << shift) - 1);
    const std::uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half_mant & 1u))) ++half_mant;
    return static_cast<std::uint16_t>(sign | half_mant);
  }
  std::uint32_t half = sign | (static_cast<std::uint32_t>(exp) << 10) | (mant >> 13);
  const std::uint32_t rest = mant & 0x1fffu;  // round to nearest even
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;
  return static_cast<std::uint16_t>(half);
}

float bf16_to_float(std::uint16_t b) noexcept {
  const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

std::uint16_t float_to_bf16(float f) noexcept {
  std::uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);  // round to nearest even
  return static_cast<std::uint16_t>(x >> 16);
}

namespace {

std::uint16_t load_u16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}

}  // namespace

void dequantize_row(tensor_type type, const void* src, float* dst, std::int64_t n) noexcept {
  const auto* p = static_cast<const std::uint8_t*>(src);
  switch (type) {
    case tensor_type::f32:
      std::memcpy(dst, p, static_cast<std::size_t>(n) * sizeof(float));
      return;
    case tensor_type::f16:
      for (std::int64_t i = 0; i < n; ++i) dst[i] = half_to_float(load_u16(p + 2 * i));
      return;
    case tensor_type::bf16:
      for (std::int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(load_u16(p + 2 * i));
      return;
    case tensor_type::q8_0:
      for (std::int64_t b = 0; b < n / 32; ++b, p += 34) {
        const float d = half_to_float(load_u16(p));
        for (int j = 0; j < 32; ++j)
          dst[b * 32 + j] = d * static_cast<float>(static_cast<std::int8_t>(p[2 + j]));
      }
      return;
    case tensor_type::q4_0:
      // Byte j holds element j (low nibble) and element j + 16 (high nibble), offset by 8.
      for (std::int64_t b = 0; b < n / 32; ++b, p += 18) {
        const float d = half_to_float(load_u16(p));
        for (int j = 0; j < 16; ++j) {
          dst[b * 32 + j] = d * static_cast<float>((p[2 + j] & 0x0f) - 8);
          dst[b * 32 + j + 16] = d * static_cast<float>((p[2 + j] >> 4) - 8);
        }
      }
      return;
    case tensor_type::q4_1:
      for (std::int64_t b = 0; b < n / 32; ++b, p += 20) {
        const float d = half_to_float(load_u16(p));
        const float m = half_to_float(load_u16(p + 2));
        for (int j = 0; j < 16; ++j) {
          dst[b * 32 + j] = d * static_cast<float>(p[4 + j] & 0x0f) + m;
          dst[b * 32 + j + 16] = d * static_cast<float>(p[4 + j] >> 4) + m;
        }
      }
      return;
  }
}

}  // namespace bastion::kernels
