#pragma once
// F32 -> quantized block formats, as GGUF (ggml) lays them out, so a quantized matrix can be
// executed by every backend and written back to a GGUF file unchanged.

#include "kernels/quant/tensor_type.hpp"

#include <cstdint>

namespace bastion::kernels {

/// Quantizes n floats (n a multiple of 32) to Q8_0 at dst (row_bytes(q8_0, n) bytes): per
/// 32-block, d = max|x| / 127 stored as F16, q = round(x / d) (half away from zero, as ggml's
/// reference quantizer), clamped to [-127, 127]. A block of zeros gets d = 0 and q = 0.
/// Non-finite inputs give a non-finite d; callers that care check their input first.
void quantize_row_q8_0(const float* x, void* dst, std::int64_t n) noexcept;

}  // namespace bastion::kernels
