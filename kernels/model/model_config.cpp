#include "kernels/model/model_config.hpp"

#include <cmath>
#include <string>

namespace bastion::kernels {

std::string_view architecture_name(architecture a) noexcept {
  switch (a) {
    case architecture::llama:
      return "llama";
    case architecture::qwen2:
      return "qwen2";
  }
  return "unknown";
}

status model_config::validate() const {
  // Bounds far above any model we serve, low enough that products of them cannot overflow.
  auto in_range = [](const char* field, std::int64_t v, std::int64_t lo,
                     std::int64_t hi) -> status {
    if (v < lo || v > hi)
      return {status_code::invalid_argument,
              std::string{"model config: "} + field + " = " + std::to_string(v) + " is outside [" +
                  std::to_string(lo) + ", " + std::to_string(hi) + "]"};
    return status::ok();
  };
  for (const auto& s :
       {in_range("n_layers", n_layers, 1, 1024), in_range("dim", dim, 1, 1 << 17),
        in_range("n_heads", n_heads, 1, 1024), in_range("n_kv_heads", n_kv_heads, 1, 1024),
        in_range("head_dim", head_dim, 2, 4096), in_range("ffn_dim", ffn_dim, 1, 1 << 20),
        in_range("vocab", vocab, 1, 1 << 24), in_range("context", context, 1, 1 << 24),
        in_range("rope dimension", rope.rot_dim, 2, head_dim)})
    if (!s) return s;
  if (n_heads % n_kv_heads != 0)
    return {status_code::invalid_argument,
            "model config: n_heads = " + std::to_string(n_heads) +
                " is not a multiple of n_kv_heads = " + std::to_string(n_kv_heads)};
  if (rope.rot_dim % 2 != 0)
    return {status_code::invalid_argument,
            "model config: rope dimension " + std::to_string(rope.rot_dim) + " is odd"};
  if (!(rms_eps > 0.0f) || !(rms_eps < 1.0f))
    return {status_code::invalid_argument,
            "model config: rms_norm_eps = " + std::to_string(rms_eps) + " is not in (0, 1)"};
  if (!(rope.base > 1.0f) || !std::isfinite(rope.base))
    return {status_code::invalid_argument,
            "model config: rope base = " + std::to_string(rope.base) + " is not a finite > 1"};
  return status::ok();
}

}  // namespace bastion::kernels
