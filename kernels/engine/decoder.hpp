#pragma once
// One forward step of a decoder-only transformer over many sequences at once: each entry of a
// batch is a prefill chunk (many tokens) or a decode token (one), so one step serves both
// (continuous batching). Keys and values go to the paged KV cache; the step returns logits for
// the last token of each entry, or for all of its tokens when asked (prefill checks).

#include "kernels/backend.hpp"
#include "kernels/engine/kv_cache.hpp"
#include "kernels/model/model.hpp"

#include <cstdint>
#include <vector>

namespace bastion::kernels {

struct step_entry {
  sequence_id seq = 0;               // must be live in the KV cache
  std::vector<std::int32_t> tokens;  // appended after the sequence's cached tokens
  bool all_logits = false;           // logits for every token, not only the last
};

struct step_output {
  std::int64_t vocab = 0;
  std::vector<float> logits;  // [rows x vocab]
  /// Entry i owns rows row_begin[i] .. row_begin[i+1]; its last token's row is row_begin[i+1]-1.
  std::vector<std::int64_t> row_begin;

  const float* last_logits(std::size_t entry) const {
    return logits.data() + (row_begin[entry + 1] - 1) * vocab;
  }
};

class decoder {
 public:
  /// REQUIRES: `kv` was made for this model (n_layers, kv_dim); all three outlive the decoder.
  decoder(const model& m, backend& be, kv_cache& kv, std::int64_t step_tokens_max = 4096);

  /// Runs one step. All or nothing: on failure no sequence has grown. Errors: an entry naming
  /// an unknown or repeated sequence, no tokens, a token id outside the vocabulary, a sequence
  /// growing past the model's context, more than step_tokens_max tokens (invalid_argument);
  /// a KV cache without room (resource_exhausted); a backend failure (its status).
  status step(const std::vector<step_entry>& batch, step_output& out);

  const model& model_ref() const noexcept { return model_; }
  kv_cache& cache() noexcept { return kv_; }

 private:
  status check(const std::vector<step_entry>& batch) const;
  status forward(const std::vector<step_entry>& batch, step_output& out);

  const model& model_;
  backend& be_;
  kv_cache& kv_;
  std::int64_t step_tokens_max_;
  // Scratch, reused across steps: [tokens x width] activations and the attention tables.
  std::vector<float> x_, h_, q_, k_, v_, attn_, o_, gate_, up_, final_;
  std::vector<std::int32_t> ids_, positions_, token_seq_, slots_, seq_block_begin_, block_table_;
};

}  // namespace bastion::kernels
