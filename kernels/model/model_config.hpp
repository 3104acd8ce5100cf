#pragma once
// The shape of a decoder-only transformer the engine runs (llama and qwen2 families), read
// from a model file's metadata by a loader and validated before any weight is looked at.

#include "kernels/backend.hpp"
#include "kernels/status.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace bastion::kernels {

enum class architecture { llama, qwen2 };

std::string_view architecture_name(architecture a) noexcept;

struct model_config {
  architecture arch = architecture::llama;
  std::int64_t n_layers = 0;
  std::int64_t dim = 0;  // residual stream width (hidden_size, embedding_length)
  std::int64_t n_heads = 0;
  std::int64_t n_kv_heads = 0;  // grouped-query attention when < n_heads
  std::int64_t head_dim = 0;    // usually dim / n_heads
  std::int64_t ffn_dim = 0;     // SiLU-gated MLP width
  std::int64_t vocab = 0;
  std::int64_t context = 0;  // the longest sequence the model was trained for
  float rms_eps = 1e-5f;
  rope_params rope;          // style depends on the source format and architecture
  bool qkv_bias = false;     // qwen2: Q, K and V projections have biases
  bool tied_output = false;  // the output projection is the token embedding table

  std::int64_t q_dim() const noexcept { return n_heads * head_dim; }
  std::int64_t kv_dim() const noexcept { return n_kv_heads * head_dim; }

  /// Every field in range and consistent; the message names the field and the value.
  status validate() const;
};

}  // namespace bastion::kernels
