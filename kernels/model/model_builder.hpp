#pragma once
// Turns a validated config plus a name -> tensor lookup into model_weights, checking every
// tensor's presence, type and shape against the config. Shared by the GGUF and Hugging Face
// loaders, which differ only in tensor names and in how they find a tensor.

#include "kernels/model/model.hpp"

#include <functional>
#include <string>
#include <vector>

namespace bastion::kernels {

/// A tensor as a file stores it. `shape` is outermost first (PyTorch order: a linear weight is
/// [out, in]); `data` holds exactly row_bytes(type, product(shape)) bytes (the loader checked).
struct stored_tensor {
  tensor_type type = tensor_type::f32;
  std::vector<std::int64_t> shape;
  const void* data = nullptr;
  std::string file;  // for messages
  /// Set when the file's element type cannot be executed (e.g. safetensors "I64"); the
  /// builder then refuses the tensor naming this type.
  std::string unsupported_dtype;
};

/// Returns the tensor named `name`, or nullptr when the model has none. A loader that finds a
/// tensor of a type it cannot execute reports that itself (with the file and the reason).
using tensor_lookup = std::function<const stored_tensor*(const std::string& name)>;

/// The names a source format gives the tensors of the decoder.
struct tensor_naming {
  std::string token_embd, output_norm, output;
  // Per layer: the prefix is layer_prefix + index + "." followed by these suffixes.
  std::string layer_prefix;
  std::string attn_norm, wq, wk, wv, bq, bk, bv, wo, ffn_norm, w_gate, w_up, w_down;
};

tensor_naming gguf_naming();
tensor_naming hugging_face_naming();

/// Fills `out` (weights only). A missing tensor, a shape that disagrees with the config or an
/// unexecutable type is an error naming the file, the tensor and the reason. With
/// config.tied_output the output projection is token_embd.
status build_weights(const model_config& config, const tensor_naming& names,
                     const tensor_lookup& lookup, const std::string& source, model_weights& out);

}  // namespace bastion::kernels
