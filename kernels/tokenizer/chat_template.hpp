#pragma once
// Chat prompts for the template families we serve, recognised from the model's Jinja
// template text and rendered by code written for each family (this is not a Jinja engine):
//  - ChatML (<|im_start|>role\ncontent<|im_end|>\n), including the default system prompt a
//    template inserts when the conversation does not start with a system message. Both
//    placements are reproduced: inside the message loop (SmolLM2, Qwen2: only when there is
//    at least one message) and before it (Qwen2.5: always). Other templates that mention
//    <|im_start|> fall back to plain ChatML, which recognised_exactly() reports.
//  - Llama 3 headers (<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>, content
//    trimmed, BOS text first). Llama 3.1+ templates (tools, knowledge-date system text) are
//    refused rather than rendered wrongly.
// The rendered prompt also lists which byte ranges came from the template, so a caller can
// let special tokens be recognised there and not inside user content.

#include "kernels/status.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bastion::kernels::tokenizer {

struct chat_message {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

struct chat_prompt {
  std::string text;
  // [begin, end) byte ranges of `text` written by the template itself (not message content).
  std::vector<std::pair<std::size_t, std::size_t>> template_ranges;
};

enum class chat_style { chatml, llama3 };

class chat_template {
 public:
  /// Recognises `template_text` (GGUF tokenizer.chat_template). `bos_text` is the BOS token's
  /// text, used when the template writes bos_token. Unknown families: status unsupported.
  static status from_template(std::string_view template_text, std::string_view bos_text,
                              chat_template& out);
  /// Plain ChatML with no default system prompt.
  static chat_template chatml();

  /// Renders `messages`, then the assistant header when add_generation_prompt.
  chat_prompt render(const std::vector<chat_message>& messages, bool add_generation_prompt) const;

  chat_style style() const noexcept { return style_; }
  const std::optional<std::string>& default_system_prompt() const noexcept {
    return default_system_;
  }
  /// False when a ChatML template was not fully understood and plain ChatML is used.
  bool recognised_exactly() const noexcept { return exact_; }

 private:
  chat_style style_ = chat_style::chatml;
  std::optional<std::string> default_system_;
  bool default_system_even_without_messages_ = false;
  std::string bos_text_;  // written first (Llama 3) when the template uses bos_token
  bool exact_ = true;
};

}  // namespace bastion::kernels::tokenizer
