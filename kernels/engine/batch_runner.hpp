#pragma once
// Continuous batching, one step at a time: requests join between steps and leave the moment
// they finish, every step mixes decode tokens of running sequences with prefill chunks of new
// ones. The worker's step thread owns one runner and calls step() in a loop; add() and
// cancel() are called between steps. Text is streamed in complete UTF-8 characters, and text
// that could be the start of a stop string is held back until it is known not to be one.
//
// REQUIRES: one thread at a time (the worker's step thread).

#include "kernels/engine/backend_buffer.hpp"
#include "kernels/engine/decoder.hpp"
#include "kernels/engine/generator.hpp"
#include "kernels/engine/sampler.hpp"

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace bastion::kernels {

struct runner_request {
  std::uint64_t id = 0;              // the caller's id; unique among live requests
  std::vector<std::int32_t> prompt;  // at least one token
  sampling_params sampling;
  std::int64_t max_tokens = 256;
  std::vector<std::string> stop_strings;
};

struct runner_event {
  enum class kind : std::uint8_t { token, finished };
  kind what = kind::token;
  std::uint64_t id = 0;
  std::int32_t token = -1;  // kind::token: the generated token
  std::string text;         // kind::token: text that became final with it (may be empty);
                            // kind::finished: the last held-back text, if any
  finish_reason reason = finish_reason::error;  // kind::finished
  status error;                                 // kind::finished with reason error
  std::int64_t prompt_tokens = 0;               // kind::finished: usage
  std::int64_t completion_tokens = 0;
};

struct runner_options {
  std::int64_t batch_sequences_max = 16;
  std::int64_t step_tokens_max = 512;
  std::int64_t prefill_chunk_max = 256;
  std::int64_t waiting_max = 1024;  // requests queued inside the runner
  std::vector<std::int32_t> end_of_generation_ids;
  detokenize_fn detokenize;           // required for text and stop strings
  sequence_id first_sequence_id = 1;  // KV cache ids used: first_sequence_id, +1, ...
};

struct runner_stats {
  std::int64_t steps = 0;
  std::int64_t last_step_sequences = 0;  // sequences in the latest step
  std::int64_t max_step_sequences = 0;   // the most sequences one step has carried
  std::int64_t prefill_tokens = 0;
  std::int64_t decode_tokens = 0;
  /// Steps whose tokens the backend picked (every sampled row plain greedy): only one id per
  /// row came back, not the rows of logits (a device backend's saving).
  std::int64_t greedy_steps = 0;
  /// Device backends: tokens drawn from the candidates the backend sent
  /// (backend::sampling_candidates_f32), and rows of logits brought back because the draw
  /// needed them (a draw the candidates could not decide).
  std::int64_t candidate_draws = 0;
  std::int64_t rows_downloaded = 0;
  /// Device backends: rows whose repetition penalty the backend applied where the logits are
  /// (backend::repetition_penalty_f32), before their pick like any other row's.
  std::int64_t penalised_rows = 0;
};

class batch_runner {
 public:
  /// REQUIRES: `engine` outlives the runner. Sequences already in its KV cache keep their blocks;
  /// the runner uses only the blocks free when it is made.
  batch_runner(step_engine& engine, runner_options options);
  ~batch_runner();
  batch_runner(const batch_runner&) = delete;
  batch_runner& operator=(const batch_runner&) = delete;

  /// Queues a request. Errors (invalid_argument / resource_exhausted): bad sampling values,
  /// empty prompt, token ids outside the vocabulary, a prompt that fills the context, stop
  /// strings without a detokenizer, a duplicate id, a full queue, or a request that could never
  /// fit the KV cache.
  status add(runner_request request);

  /// Ends a waiting or running request now: its KV blocks are freed at once. Its finished
  /// event (reason `cancelled` is not an engine reason: the caller knows it cancelled) is not
  /// emitted. Returns false for an unknown id.
  bool cancel(std::uint64_t id);

  /// Stops a running request to make room for more urgent work and returns the tokens it had
  /// generated, so it can be re-added later with prompt + generated tokens and a smaller
  /// max_tokens. Its KV blocks are freed at once. False for an unknown id.
  bool preempt(std::uint64_t id, std::vector<std::int32_t>& generated);

  /// Admits waiting requests that fit, runs one decoder step, and appends what happened.
  /// Returns the number of sequences in the step (0 when idle). A backend failure fails every
  /// running request (finished events with the error) and is returned.
  status step(std::vector<runner_event>& events, std::int64_t* sequences_in_step = nullptr);

  bool idle() const noexcept { return waiting_.empty() && active_.empty(); }
  std::size_t waiting() const noexcept { return waiting_.size(); }
  std::size_t active() const noexcept { return active_.size(); }
  const runner_stats& stats() const noexcept { return stats_; }

 private:
  struct sequence_state;
  void admit();
  void finish(sequence_state& s, finish_reason why, std::vector<runner_event>& events,
              status error = {});
  /// Device backends: picks the token of every picking row (non-null in `picks`) from the
  /// greedy tokens and the candidates, bringing back a row only when it must. Penalised rows
  /// get their penalty on the device first (rewriting the step's logits). Writes `next`.
  status pick_on_device(const std::vector<sequence_state*>& picks, const step_output& out,
                        std::vector<std::int32_t>& next);
  /// The repetition penalty of every penalised picking row, in one backend call on the step's
  /// logits; `penalised_greedy` says whether a greedy row was among them.
  status penalise_on_device(const std::vector<sequence_state*>& picks, const step_output& out,
                            float* logits, bool& penalised_greedy);
  /// Text of `s` that is final: complete UTF-8 and not a possible stop-string prefix.
  void emit_text(sequence_state& s, std::int32_t token, std::vector<runner_event>& events);

  step_engine& engine_;
  runner_options options_;
  std::deque<runner_request> waiting_;
  std::vector<std::unique_ptr<sequence_state>> active_;
  std::map<std::uint64_t, bool> live_;  // ids waiting or running
  std::int64_t reserved_blocks_ = 0;
  std::int64_t capacity_blocks_ = 0;  // free when the runner started: others may hold the rest
  sequence_id next_seq_ = 1;
  runner_stats stats_;
  // pick_on_device's buffers, kept across steps.
  static constexpr std::int32_t candidates_per_row = 512;
  std::vector<float> temperatures_;
  std::vector<candidate_summary> summaries_;
  std::vector<std::int32_t> candidate_ids_;
  std::vector<float> candidate_logits_;
  std::vector<float> row_;
  // penalise_on_device's tables (per row of the step's logits), and the greedy tokens of the
  // penalised logits (backend memory, then host).
  std::vector<float> penalties_;
  std::vector<std::int32_t> penalty_begin_;
  std::vector<std::int32_t> penalty_tokens_;
  backend_buffer penalised_greedy_dev_;
  std::vector<std::int32_t> penalised_greedy_;
};

}  // namespace bastion::kernels
