#include "actors/worker/worker_input.hpp"

#include <type_traits>

namespace bastion::worker {

std::optional<input_refusal> encode_input(const kernels::model_bundle& bundle,
                                          const gateway::inference_input& input,
                                          std::int64_t context_tokens_max,
                                          std::vector<std::int32_t>& out) {
  out.clear();
  const std::int64_t vocab = bundle.weights.config.vocab;
  std::optional<std::string> error;
  std::visit(
      [&](const auto& in) {
        using T = std::decay_t<decltype(in)>;
        if constexpr (std::is_same_v<T, std::string>) {
          if (auto st = kernels::encode_prompt(bundle, in, out); !st)
            error = "the prompt could not be tokenized: " + st.message();
        } else if constexpr (std::is_same_v<T, std::vector<gateway::chat_message>>) {
          std::vector<kernels::tokenizer::chat_message> chat;
          chat.reserve(in.size());
          for (const auto& m : in) chat.push_back({m.role, m.content});
          if (auto st = kernels::encode_chat(bundle, chat, out); !st)
            error = "the chat could not be rendered: " + st.message();
        } else {
          out.reserve(in.size());
          for (std::size_t i = 0; i < in.size(); ++i) {
            if (static_cast<std::int64_t>(in[i]) >= vocab) {
              error = "token id " + std::to_string(in[i]) + " at position " + std::to_string(i) +
                      " is outside the model's vocabulary of " + std::to_string(vocab) + " tokens";
              return;
            }
            out.push_back(static_cast<std::int32_t>(in[i]));
          }
        }
      },
      input);
  if (error) return input_refusal{input_refusal::kind::malformed, std::move(*error)};
  if (out.empty())
    return input_refusal{input_refusal::kind::malformed, "the input encodes to no tokens"};
  if (static_cast<std::int64_t>(out.size()) >= context_tokens_max)
    return input_refusal{input_refusal::kind::too_long,
                         "the prompt is " + std::to_string(out.size()) +
                             " tokens; the model's context holds " +
                             std::to_string(context_tokens_max) +
                             " and must leave room for at least one generated token"};
  return std::nullopt;
}

}  // namespace bastion::worker
