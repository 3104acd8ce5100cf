#pragma once
// A small generation driver: runs many requests to completion with batched decoder steps,
// admitting requests while the KV cache has room for them, prefilling prompts in chunks and
// decoding one token per running sequence per step (continuous batching in miniature).

#include "kernels/engine/decoder.hpp"
#include "kernels/engine/sampler.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace bastion::kernels {

struct generation_request {
  std::vector<std::int32_t> prompt;  // token ids, at least one
  sampling_params sampling;
  std::int64_t max_tokens = 256;          // generated tokens, the end-of-generation token excluded
  std::vector<std::string> stop_strings;  // need generator_options::detokenize
};

enum class finish_reason {
  end_of_generation,  // the model produced an end-of-generation token (not in `tokens`)
  stop_string,        // the text contains a stop string; `text` ends before it
  max_tokens,
  context_full,  // the sequence reached the model's context length
  error,         // `error` says why (bad request, a request too big for the KV cache, ...)
};

struct generation_result {
  std::vector<std::int32_t> tokens;  // generated tokens
  std::string text;                  // detokenized output when a detokenizer was given
  finish_reason reason = finish_reason::error;
  status error;
};

/// Text of a sequence of generated tokens (the tokenizer lives outside the engine).
using detokenize_fn = std::function<std::string(const std::vector<std::int32_t>& tokens)>;

struct generator_options {
  std::int64_t batch_sequences_max = 16;  // sequences running at once
  std::int64_t step_tokens_max = 512;     // tokens per step (decode tokens first, then prefill)
  std::int64_t prefill_chunk_max = 256;   // prompt tokens of one sequence per step
  std::vector<std::int32_t> end_of_generation_ids;
  detokenize_fn detokenize;           // required when a request has stop strings
  sequence_id first_sequence_id = 1;  // request i runs as sequence first_sequence_id + i
};

struct generation_stats {
  std::int64_t steps = 0;
  std::int64_t prefill_tokens = 0;
  std::int64_t decode_tokens = 0;
};

/// Runs every request to completion; `out[i]` answers `requests[i]`. A request that cannot run
/// gets reason `error`; the call itself fails only for bad options or a backend failure.
status generate(decoder& dec, const std::vector<generation_request>& requests,
                const generator_options& options, std::vector<generation_result>& out,
                generation_stats* stats = nullptr);

}  // namespace bastion::kernels
