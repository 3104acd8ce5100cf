#pragma once
// The worker's side of a request's input: the client's text, chat or token ids turned into the
// model's token ids, checked against the model before the engine sees them. Every refusal is a
// message for the client (it becomes an invalid_argument error) naming what was wrong.

#include "actors/gateway/inference_port.hpp"
#include "kernels/bundle/model_bundle.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bastion::worker {

/// Why an input was refused: the prompt too long for the context is counted apart (it is the
/// refusal a client fixes by shortening, not by correcting), the rest are malformed input.
struct input_refusal {
  enum class kind : std::uint8_t { malformed, too_long };
  kind what = kind::malformed;
  std::string message;
};

/// Encodes `input` for `bundle`: raw text with the tokenizer's BOS rule, chat messages with
/// the model's chat template, token ids as given. `context_tokens_max` is the smaller of the
/// model's context and the configured limit; the prompt must leave room for one new token.
/// Returns the refusal, or nullopt with `out` filled.
std::optional<input_refusal> encode_input(const kernels::model_bundle& bundle,
                                          const gateway::inference_input& input,
                                          std::int64_t context_tokens_max,
                                          std::vector<std::int32_t>& out);

}  // namespace bastion::worker
