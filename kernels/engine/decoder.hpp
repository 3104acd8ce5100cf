#pragma once
// One forward step of a decoder-only transformer over many sequences at once: each entry of a
// batch is a prefill chunk (many tokens) or a decode token (one), so one step serves both
// (continuous batching). Keys and values go to the paged KV cache; the step returns logits for
// the last token of each entry, or for all of its tokens when asked (prefill checks).

#include "kernels/backend.hpp"
#include "kernels/engine/backend_buffer.hpp"
#include "kernels/engine/collective.hpp"
#include "kernels/engine/kv_cache.hpp"
#include "kernels/engine/resident_weights.hpp"
#include "kernels/engine/step_engine.hpp"
#include "kernels/model/model.hpp"

#include <cstdint>
#include <vector>

namespace bastion::kernels {

struct step_entry {
  sequence_id seq = 0;               // must be live in the KV cache
  std::vector<std::int32_t> tokens;  // appended after the sequence's cached tokens
  bool all_logits = false;           // logits for every token, not only the last
};

/// What a step brings back to the host. A device backend computes the greedy tokens on the
/// device, so greedy_tokens alone downloads one int per row instead of a row of logits.
enum class step_results { logits, greedy_tokens, logits_and_greedy_tokens };

struct step_output {
  std::int64_t vocab = 0;
  std::vector<float>
      logits;  // [rows x vocab]; empty (device backends) when only greedy tokens were asked for
  /// Per row: the lowest id of the largest logit (backend::argmax_rows_f32), when asked for.
  std::vector<std::int32_t> greedy_tokens;
  /// Entry i owns rows row_begin[i] .. row_begin[i+1]; its last token's row is row_begin[i+1]-1.
  std::vector<std::int64_t> row_begin;

  const float* last_logits(std::size_t entry) const {
    return logits.data() + (row_begin[entry + 1] - 1) * vocab;
  }
};

// Memory: the weights are made resident on the backend once (resident_weights: no copy for a
// host backend, one upload for a device backend), the scratch and the per-step tables live in
// the backend's memory, and only the logits come back to the host.
class decoder final : public step_engine {
 public:
  /// REQUIRES: `kv` was made for this model (n_layers, kv_dim), in `be`'s memory when `be` is a
  /// device backend (kv_cache::create with the backend); all three outlive the decoder.
  decoder(const model& m, backend& be, kv_cache& kv, std::int64_t step_tokens_max = 4096);
  decoder(const decoder&) = delete;
  decoder& operator=(const decoder&) = delete;
  /// Drops the backend's recordings, which point into this decoder's memory.
  ~decoder();

  /// Makes the weights resident on the backend (the first step does it otherwise). Idempotent.
  status prepare();
  /// The weights as the backend reads them; null before prepare().
  const resident_weights* resident() const noexcept { return ready_ ? &weights_ : nullptr; }

  /// Tensor parallelism: when set, `m` is this rank's shard (tensor_parallel.hpp) and the
  /// attention output and MLP down projections are summed across ranks before the residual
  /// add. REQUIRES: every rank steps with the same batch. Null (the default) for one rank.
  void use_collective(collective* c) noexcept { collective_ = c; }

  /// Decode steps (one token per entry, at most recorded_step_tokens_max tokens, no
  /// collective) on a device backend run as one recorded replay per batch shape
  /// (backend::run_recorded: a CUDA graph) instead of one launch per operation. On by default;
  /// off runs every operation by itself (the benchmark's baseline).
  void use_recordings(bool on) noexcept { recordings_ = on; }
  static constexpr std::int64_t recorded_step_tokens_max = 8;

  /// Runs one step. All or nothing: on failure no sequence has grown. Errors: an entry naming
  /// an unknown or repeated sequence, no tokens, a token id outside the vocabulary, a sequence
  /// growing past the model's context, more than step_tokens_max tokens (invalid_argument);
  /// a KV cache without room (resource_exhausted); a backend failure (its status).
  status step(const std::vector<step_entry>& batch, step_output& out,
              step_results want = step_results::logits) override;

  /// After a step on a device backend: that step's logits [rows x vocab] in backend memory,
  /// until the next step (sampling reads them there: backend::sampling_candidates_f32). Null
  /// on a host backend, whose logits are in step_output, and before the first step.
  float* backend_logits() noexcept override { return backend_logits_; }

  const model& model_ref() const noexcept { return model_; }
  backend& backend_ref() noexcept { return be_; }
  kv_cache& cache() noexcept { return kv_; }

  // step_engine: one backend, one KV cache.
  const model_config& config() const noexcept override { return model_.config; }
  backend& logits_backend() noexcept override { return be_; }
  std::int64_t kv_blocks_free() const noexcept override { return kv_.blocks_free(); }
  std::int64_t kv_blocks_total() const noexcept override { return kv_.blocks_total(); }
  std::int64_t kv_blocks_for(std::int64_t tokens) const noexcept override {
    return kv_.blocks_for(tokens);
  }
  status add_sequence(sequence_id id) override { return kv_.add_sequence(id); }
  void release_sequence(sequence_id id) override { kv_.release(id); }
  std::int64_t sequence_length(sequence_id id) const override { return kv_.length(id); }

 private:
  status check(const std::vector<step_entry>& batch) const;
  status forward(const std::vector<step_entry>& batch, step_output& out, step_results want);

  const model& model_;
  backend& be_;
  kv_cache& kv_;
  std::int64_t step_tokens_max_;
  collective* collective_ = nullptr;
  bool recordings_ = true;
  resident_weights weights_;
  bool ready_ = false;
  float* backend_logits_ = nullptr;  // see backend_logits()
  // Per-step tables built on the host, then uploaded in one piece: ids, positions, entry of
  // each token, KV slots, block table ranges, rows that get logits, block table (last: the
  // only part whose length changes between decode steps of one batch shape).
  std::vector<std::int32_t> tables_;
  // Scratch in backend memory, reused across steps: the tables and the activations.
  backend_buffer tables_dev_, activations_;
};

}  // namespace bastion::kernels
