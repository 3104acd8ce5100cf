#pragma once
// Loads a llama- or qwen2-architecture GGUF file: the config from its metadata, the weights as
// views into the file's mapping (never dequantized wholesale).
//
// RoPE: llama.cpp's converter permutes llama Q/K rows so that GGUF llama models rotate adjacent
// pairs ("normal" RoPE); qwen2 is converted unpermuted and rotates half-split pairs ("neox").

#include "kernels/model/gguf_file.hpp"
#include "kernels/model/model.hpp"

#include <memory>
#include <string>

namespace bastion::kernels {

/// Opens `path` and loads it. On failure `out` is untouched and the status names the file,
/// the metadata key or tensor, and the reason.
status load_gguf_model(const std::string& path, model& out);

/// Loads from an already opened file, which `out.storage` then shares.
status load_gguf_model(std::shared_ptr<const gguf::file> file, model& out);

}  // namespace bastion::kernels
