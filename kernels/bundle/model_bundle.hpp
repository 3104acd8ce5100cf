#pragma once
// Everything a worker or the bastion-run tool needs to serve one model: the weights, the
// tokenizer, the chat template and the end-of-generation tokens, loaded from a GGUF file or a
// Hugging Face folder (config.json + safetensors + tokenizer.json) with one call.

#include "kernels/engine/generator.hpp"
#include "kernels/model/model.hpp"
#include "kernels/status.hpp"
#include "kernels/tokenizer/bpe_tokenizer.hpp"
#include "kernels/tokenizer/chat_template.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace bastion::kernels {

struct model_bundle {
  model weights;
  std::unique_ptr<tokenizer::bpe_tokenizer> tok;
  std::optional<tokenizer::chat_template> chat;  // absent: the model has no chat template
  std::vector<std::int32_t> end_of_generation_ids;
  std::string source;  // the path it came from
};

/// Loads `path`: a .gguf file, or a folder holding config.json, *.safetensors and
/// tokenizer.json. A status names the file and the reason when anything is missing or bad.
status load_model_bundle(const std::string& path, model_bundle& out);

/// Token ids of a raw completion prompt (the tokenizer's BOS rule, special tokens parsed).
status encode_prompt(const model_bundle& b, const std::string& text,
                     std::vector<std::int32_t>& out);

/// Token ids of a chat: rendered with the model's template (plain ChatML when it has none)
/// and the assistant header appended. Control tokens typed inside messages stay text, so a
/// user cannot end a turn or forge a system message.
status encode_chat(const model_bundle& b, const std::vector<tokenizer::chat_message>& messages,
                   std::vector<std::int32_t>& out);

/// Text of generated tokens, control tokens not rendered (for the engine's stop strings).
detokenize_fn make_detokenizer(const model_bundle& b);

}  // namespace bastion::kernels
