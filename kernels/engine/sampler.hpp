#pragma once
// Picks the next token from a row of logits. Deterministic for a given seed: the generator is
// a 64-bit Mersenne Twister seeded per request, and the uniform draw is built from its bits
// (not std::uniform_real_distribution, whose output differs between standard libraries).
//
// Order, as Hugging Face's logits processors apply it: repetition penalty, then (temperature
// 0) argmax, else temperature, top-k, softmax, top-p, draw. A device backend may apply the
// penalty where the logits are (backend::repetition_penalty_f32, the same rule bit for bit);
// the caller then says so (logits_kind::penalised) and the sampler goes on from there.
//
// The draw walks the kept tokens from the most likely down and takes the one at which the
// running probability passes the uniform draw. Sorting the vocabulary for that walk (49152 to
// 151936 entries) cost 10-14 ms a token on this machine; the sampler instead finds the same
// token (and the top-k and top-p sets) by selection, in time linear in the vocabulary.

#include "kernels/sampling/candidates.hpp"
#include "kernels/sampling/repetition_penalty.hpp"
#include "kernels/status.hpp"

#include <cstdint>
#include <optional>
#include <random>
#include <utility>
#include <vector>

namespace bastion::kernels {

struct sampling_params {
  float temperature = 0.0f;         // 0: greedy (argmax, lowest id on ties)
  std::int32_t top_k = 0;           // keep the k most likely tokens; 0: all
  float top_p = 1.0f;               // keep the smallest set whose probability reaches top_p
  float repetition_penalty = 1.0f;  // > 1 discourages tokens already in the history; 1: off
  std::uint64_t seed = 0;

  /// Each field in range; the message names the field and the value.
  status validate() const;
};

/// Whether the logits handed to the sampler still need its repetition penalty.
enum class logits_kind : std::uint8_t {
  raw,        // as the model gave them: the sampler applies the penalty, reading the history
  penalised,  // the penalty for this history is applied already (penalised_logit over its
              // distinct tokens, e.g. backend::repetition_penalty_f32): not applied again
};

class sampler {
 public:
  /// REQUIRES: params.validate() is ok.
  explicit sampler(const sampling_params& params);

  /// The next token for `logits` [vocab]. For raw logits `history` (prompt and generated
  /// tokens) feeds the repetition penalty; ids outside [0, vocab) in it are ignored. Penalised
  /// logits give the token raw ones with the same history would (and `history` is not read).
  /// REQUIRES: vocab > 0.
  std::int32_t sample(const float* logits, std::int64_t vocab,
                      const std::vector<std::int32_t>& history,
                      logits_kind kind = logits_kind::raw);

  /// Draws from a row known only by its candidates (backend::sampling_candidates_f32 gathered
  /// with `candidate_window`; `capacity` entries per row): the token sample() would pick from
  /// the whole row, or nothing when the candidates cannot tell (more of them than were sent,
  /// or the token drawn depends on the tokens not sent: the draw falling in the tail or near
  /// a boundary the tail's unknown weight moves, under top-k or top-p); then sample() with the
  /// whole row (of the same kind) picks it with the same draw (the generator moves once per
  /// token either way). Nothing, and no draw taken, when !draws_from_candidates(kind).
  std::optional<std::int32_t> sample_from(const candidate_summary& summary, const std::int32_t* ids,
                                          const float* logits, std::int64_t capacity,
                                          logits_kind kind = logits_kind::raw);
  /// Whether sample_from applies to candidates of logits of this kind: temperature > 0, and no
  /// repetition penalty left to apply (it reads the history, not only the top of the row).
  bool draws_from_candidates(logits_kind kind = logits_kind::raw) const noexcept {
    return params_.temperature > 0.0f &&
           (kind == logits_kind::penalised || params_.repetition_penalty == 1.0f);
  }
  /// True when the logits need the repetition penalty before a pick (penalty != 1).
  bool penalises() const noexcept { return params_.repetition_penalty != 1.0f; }
  float repetition_penalty() const noexcept { return params_.repetition_penalty; }
  /// Temperature 0: sample() is the argmax of the (penalised) logits.
  bool is_greedy() const noexcept { return params_.temperature == 0.0f; }
  /// Tokens scoring within this of the best are candidates: e^-12 ~ 6e-6, so the tokens below
  /// weigh little together and the draw rarely lands among them.
  static constexpr float candidate_window = 12.0f;

  /// True when sample() is the argmax of the raw logits (temperature 0, no repetition
  /// penalty): then backend::argmax_rows_f32 picks the same token (NaN rows aside: the backend
  /// passes over NaN, a broken model's output either way), and a device backend need not
  /// send the logits back.
  bool is_plain_greedy() const noexcept {
    return params_.temperature == 0.0f && params_.repetition_penalty == 1.0f;
  }

 private:
  using scored = std::pair<float, std::int32_t>;  // score, token
  double uniform();                               // in [0, 1)
  double draw();  // the pending draw sample_from left, else a new one
  bool more_likely(std::int32_t a, std::int32_t b) const noexcept;
  /// Among order_[lo, hi): the fewest most likely tokens whose weight, added to `reached`,
  /// passes `target` (exceeds it; reaches it when `or_equal`). Moves them to order_[lo, end),
  /// the least likely of them last, adds their weight to `reached` and returns `end`; returns
  /// hi when even all of them fall short (rounding).
  std::size_t take_until(std::size_t lo, std::size_t hi, double target, bool or_equal,
                         double& reached);

  sampling_params params_;
  std::mt19937_64 rng_;
  std::vector<float> work_;  // penalised logits, then divided by the temperature
  std::vector<scored> top_;  // top-k's heap
  // e^(score - best), the unnormalised probability, per token id (sample()).
  std::vector<double> weight_;
  std::vector<std::int32_t> order_;     // token ids, rearranged by the selections
  std::optional<double> pending_draw_;  // drawn by sample_from, which needed the whole row
  std::vector<scored> candidates_;      // sample_from's, most likely first
  std::vector<double> cumulative_;      // sample_from's running weight of the sure candidates
};

}  // namespace bastion::kernels
