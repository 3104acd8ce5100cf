#pragma once
// A loaded model: its config and views of its weights in their stored types. The weights point
// into memory-mapped files that `storage` keeps alive; small vectors (norm weights, biases) are
// copied to F32 at load because every backend wants them aligned and F32.

#include "kernels/backend.hpp"
#include "kernels/model/model_config.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace bastion::kernels {

struct layer_weights {
  std::vector<float> attn_norm;   // [dim]
  weight_view wq, wk, wv;         // [q_dim x dim], [kv_dim x dim], [kv_dim x dim]
  std::vector<float> bq, bk, bv;  // empty unless config.qkv_bias
  weight_view wo;                 // [dim x q_dim]
  std::vector<float> ffn_norm;    // [dim]
  weight_view w_gate, w_up;       // [ffn_dim x dim]
  weight_view w_down;             // [dim x ffn_dim]
};

/// The seven projection matrices of a layer (a layer_weights, or anything with the same
/// members such as the engine's resident_layer; const or not), as pointers into it, in the
/// order a forward pass reads them: the one list of them, so code that visits every matrix
/// cannot miss one. layer_projection_names[i] names the i-th, for messages.
template <class Layer>
auto layer_projections(Layer& layer) {
  return std::array{&layer.wq,     &layer.wk,   &layer.wv,    &layer.wo,
                    &layer.w_gate, &layer.w_up, &layer.w_down};
}
inline constexpr std::array<const char*, 7> layer_projection_names{
    "wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down"};
static_assert(std::tuple_size_v<decltype(layer_projections(std::declval<layer_weights&>()))> ==
                  layer_projection_names.size(),
              "every projection has a name");

struct model_weights {
  weight_view token_embd;  // [vocab x dim]
  std::vector<layer_weights> layers;
  std::vector<float> output_norm;  // [dim]
  weight_view output;              // [vocab x dim]; the same view as token_embd when tied
};

struct model {
  model_config config;
  model_weights weights;
  /// Tokens that end a generation (EOS, end-of-turn); the sampler driver stops on them.
  std::vector<std::int32_t> end_of_generation_ids;
  /// Token texts when the file carries a vocabulary (GGUF); empty otherwise.
  std::vector<std::string> token_texts;
  /// Where the weights came from, for messages.
  std::string source;
  /// Owners of the mapped bytes the weight views point into.
  std::vector<std::shared_ptr<const void>> storage;
};

}  // namespace bastion::kernels
