#pragma once
// Loads a Hugging Face model folder: config.json plus model.safetensors, or shards listed in
// model.safetensors.index.json. Architectures llama (GQA, rope_theta, tie_word_embeddings) and
// qwen2 (Q/K/V biases); F32/F16/BF16 weights stay in their stored type, memory-mapped.
// Hugging Face models rotate half-split pairs (rotate_half), so RoPE is rope_style::half_split.
//
// Part of the optional Hugging Face support (needs nlohmann-json); GGUF never needs it.

#include "kernels/model/model.hpp"

#include <string>

namespace bastion::kernels {

/// Loads the model in `folder`. On failure `out` is untouched and the status names the file,
/// the key or tensor, and the reason.
status load_hf_model(const std::string& folder, model& out);

}  // namespace bastion::kernels
