#pragma once
// Greedy decoding of several sequences batched together on one backend, keeping every step's
// logits, and the comparison of two such runs (CUDA against the CPU reference): identical
// tokens, or the first divergence with the reference's logit margin there, which is a near-tie
// when it is within the logit error measured at that step.

#include "kernels/engine/decoder.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace bastion::test {

struct greedy_run {
  std::vector<std::vector<std::int32_t>> tokens;        // [seq][step]
  std::vector<std::vector<std::vector<float>>> logits;  // [seq][step][vocab]
  double prefill_s = 0.0, decode_s = 0.0;
};

inline std::int32_t argmax(const std::vector<float>& v) {
  return static_cast<std::int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

/// Prefills every prompt in one step, then decodes `steps` tokens for all of them, one step
/// per token, taking the argmax. REQUIRES: the KV cache of `be`'s kind has room.
/// How a run steps: with the decoder's recorded replays or not, and with the greedy token
/// taken on the host from downloaded logits or by the backend (then no logits come back and
/// out.logits stays empty).
struct greedy_options {
  bool recordings = true;
  bool backend_greedy = false;
  kernels::collective* collective = nullptr;  // all-reduces after attention and MLP through it
};

inline kernels::status run_greedy(const kernels::model& m, kernels::backend& be,
                                  const std::vector<std::vector<std::int32_t>>& prompts, int steps,
                                  greedy_run& out, greedy_options opt = {}) {
  std::unique_ptr<kernels::kv_cache> kv;
  const kernels::kv_cache_config cfg{m.config.n_layers, m.config.kv_dim(), 16, 256, 16};
  if (auto s = kernels::kv_cache::create(cfg, be, kv); !s) return s;
  kernels::decoder dec{m, be, *kv};
  dec.use_recordings(opt.recordings);
  dec.use_collective(opt.collective);
  if (auto s = dec.prepare(); !s) return s;
  out = {};
  out.tokens.resize(prompts.size());
  out.logits.resize(prompts.size());
  std::vector<kernels::step_entry> batch;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    if (auto s = kv->add_sequence(i); !s) return s;
    batch.push_back({i, prompts[i], false});
  }
  kernels::step_output o;
  for (int step = 0; step <= steps; ++step) {
    if (opt.backend_greedy) {
      if (auto s = dec.step(batch, o, kernels::step_results::greedy_tokens); !s) return s;
      if (!o.logits.empty() || o.greedy_tokens.size() != batch.size())
        return {kernels::status_code::device_error,
                "a greedy-tokens step brought back logits or the wrong number of tokens"};
      for (std::size_t i = 0; i < batch.size(); ++i) {
        const auto t = o.greedy_tokens[static_cast<std::size_t>(o.row_begin[i + 1] - 1)];
        out.tokens[i].push_back(t);
        batch[i].tokens = {t};
      }
      continue;
    }
    if (auto s = dec.step(batch, o); !s) return s;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      std::vector<float> l(o.last_logits(i), o.last_logits(i) + o.vocab);
      const auto t = argmax(l);
      out.logits[i].push_back(std::move(l));
      out.tokens[i].push_back(t);
      batch[i].tokens = {t};
    }
  }
  return kernels::status::ok();
}

/// Prints the comparison; true when the tokens are identical, or first diverge at a near-tie.
inline bool compare_greedy(const std::string& what, const greedy_run& ref, const greedy_run& got) {
  bool ok = true;
  for (std::size_t s = 0; s < ref.tokens.size(); ++s) {
    double worst = 0.0;
    std::size_t step = 0;
    for (; step < ref.tokens[s].size(); ++step) {
      const auto& a = ref.logits[s][step];
      const auto& b = got.logits[s][step];
      double num = 0.0, den = 1e-30;
      for (std::size_t i = 0; i < a.size(); ++i) {
        num = std::max(num, std::abs(double{a[i]} - double{b[i]}));
        den = std::max(den, std::abs(double{a[i]}));
      }
      worst = std::max(worst, num / den);
      if (ref.tokens[s][step] != got.tokens[s][step]) {
        const double margin = double{a[static_cast<std::size_t>(ref.tokens[s][step])]} -
                              double{a[static_cast<std::size_t>(got.tokens[s][step])]};
        const bool tie = margin <= 2.0 * num;
        std::printf(
            "%s %s seq %zu: first divergence at step %zu: reference token %d, got %d; "
            "reference margin %.4g vs logit error %.4g there: %s\n",
            tie ? "PASS" : "FAIL", what.c_str(), s, step, ref.tokens[s][step], got.tokens[s][step],
            margin, num, tie ? "a near-tie" : "NOT a tie");
        ok = ok && tie;
        break;
      }
    }
    if (step == ref.tokens[s].size())
      std::printf(
          "PASS %s seq %zu: %zu greedy tokens identical (worst normalised logit error "
          "%.3g)\n",
          what.c_str(), s, step, worst);
  }
  return ok;
}

}  // namespace bastion::test
