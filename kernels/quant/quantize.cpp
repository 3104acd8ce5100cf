#include "kernels/quant/quantize.hpp"

#include <algorithm>
#include <cmath>

namespace bastion::kernels {

void quantize_row_q8_0(const float* x, void* dst, std::int64_t n) noexcept {
  auto* out = static_cast<std::uint8_t*>(dst);
  for (std::int64_t b = 0; b < n / 32; ++b, x += 32, out += 34) {
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const std::uint16_t h = float_to_half(d);
    out[0] = static_cast<std::uint8_t>(h & 0xffu);
    out[1] = static_cast<std::uint8_t>(h >> 8);
    for (int i = 0; i < 32; ++i) {
      const float q = std::min(127.0f, std::max(-127.0f, std::round(x[i] * id)));
      out[2 + i] = static_cast<std::uint8_t>(static_cast<std::int8_t>(q));
    }
  }
}

}  // namespace bastion::kernels
