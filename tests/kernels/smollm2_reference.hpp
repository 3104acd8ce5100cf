#pragma once
// What the SmolLM2 reference tests share (smollm2_reference_test: the exact F32 numerics;
// cpu_smollm2_int8_test: the int8-activation numerics): the model and the two reference files
// (llama.cpp and transformers, tests/fixtures/smollm2-*.json), all five prompts run greedily in
// one batch on a given backend, and the comparison of a run with a reference.
//
// The comparison: while our tokens agree with the reference, our logits of the reference's
// top-2 tokens must be within `logit_tolerance`; at a first divergence, either it is refused
// (`require_exact`) or both engines must see a near tie there (top-2 gap < near_tie_logits).

#include "kernels/engine/decoder.hpp"
#include "kernels/model/gguf_loader.hpp"
#include "tests/support/model_path.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace bastion::test::smollm2 {

using json = nlohmann::json;

/// PASS/FAIL lines and their counts, for the tests' own main().
struct checks {
  int passed = 0, failed = 0;
  void check(bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "PASS" : "FAIL", what.c_str());
    (ok ? passed : failed)++;
  }
  int exit_code() const {
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
  }
};

struct references {
  json llamacpp;
  json transformers;
};

/// The model and both references; nullopt (after printing why) when the model is not fetched
/// (the test then exits 77) or a file cannot be read (`failed` set: exit 1).
inline std::optional<references> load(kernels::model& m, bool& failed) {
  failed = false;
  const std::string path = smollm2_path();
  if (!file_exists(path)) {
    std::printf("SKIP: %s not found (run scripts/fetch-model)\n", path.c_str());
    return std::nullopt;
  }
  const std::string dir = BASTION_FIXTURES_DIR;
  std::ifstream llama_in(dir + "/smollm2-llamacpp.json"), hf_in(dir + "/smollm2-transformers.json");
  references refs{json::parse(llama_in), json::parse(hf_in)};
  if (auto st = kernels::load_gguf_model(path, m); !st) {
    std::printf("FAIL load: %s\n", st.message().c_str());
    failed = true;
    return std::nullopt;
  }
  return refs;
}

struct our_run {
  std::vector<std::int32_t> tokens;
  std::vector<std::vector<float>> logits;  // the whole row per step: any token's logit
};

/// Greedy for every prompt at once: one prefill step, then one decode token per prompt per
/// step, for as many steps as the references hold; no stop at end-of-generation (they do not).
/// Empty (after printing why) on an engine failure.
inline std::vector<our_run> run_greedy(const kernels::model& m, kernels::backend& be,
                                       const json& prompts) {
  using namespace kernels;
  std::unique_ptr<kv_cache> kv;
  if (!kv_cache::create({m.config.n_layers, m.config.kv_dim(), 16, 64, 8}, kv)) return {};
  decoder dec{m, be, *kv};
  const std::size_t n = prompts.size();
  const std::size_t steps = prompts[0].at("generated").size();
  std::vector<our_run> runs(n);
  std::vector<step_entry> batch;
  for (std::size_t i = 0; i < n; ++i) {
    if (!kv->add_sequence(i + 1)) return {};
    batch.push_back({i + 1, prompts[i].at("prompt_ids").get<std::vector<std::int32_t>>(), false});
  }
  for (std::size_t s = 0; s < steps; ++s) {
    step_output out;
    if (auto st = dec.step(batch, out); !st) {
      std::printf("FAIL step %zu: %s\n", s, st.message().c_str());
      return {};
    }
    for (std::size_t i = 0; i < n; ++i) {
      const float* row = out.last_logits(i);
      const auto next = static_cast<std::int32_t>(std::max_element(row, row + out.vocab) - row);
      runs[i].tokens.push_back(next);
      runs[i].logits.emplace_back(row, row + out.vocab);
      batch[i].tokens = {next};
    }
  }
  return runs;
}

inline void compare(checks& c, const std::string& reference_name, const json& ref_prompt,
                    const our_run& ours, double logit_tolerance, bool require_exact,
                    double near_tie_logits) {
  const auto label = ref_prompt.at("label").get<std::string>();
  const auto want = ref_prompt.at("generated").get<std::vector<std::int32_t>>();
  const auto& top2 = ref_prompt.at("top2");
  std::size_t agree = 0;
  double max_logit_diff = 0.0;
  while (agree < want.size() && agree < ours.tokens.size() && ours.tokens[agree] == want[agree]) {
    const auto& row = ours.logits[agree];
    for (int k : {0, 2}) {
      const auto id = top2[agree][k].get<std::int32_t>();
      max_logit_diff =
          std::max(max_logit_diff, std::abs(static_cast<double>(row[static_cast<std::size_t>(id)]) -
                                            top2[agree][k + 1].get<double>()));
    }
    ++agree;
  }
  const std::string who = reference_name + " " + label;
  std::printf(
      "info: %s: %zu of %zu tokens agree; max |logit diff| on the reference's top-2 "
      "while agreeing %.4g\n",
      who.c_str(), agree, want.size(), max_logit_diff);
  c.check(max_logit_diff < logit_tolerance,
          who + ": logits of the reference's top-2 within " + std::to_string(logit_tolerance));
  if (agree == want.size()) {
    c.check(true, who + ": all " + std::to_string(want.size()) + " greedy tokens match");
    return;
  }
  const double ref_gap = top2[agree][1].get<double>() - top2[agree][3].get<double>();
  const auto& row = ours.logits[agree];
  const double our_gap = static_cast<double>(row[static_cast<std::size_t>(ours.tokens[agree])]) -
                         static_cast<double>(row[static_cast<std::size_t>(want[agree])]);
  std::printf(
      "info: %s: first divergence at step %zu: reference picks %d (top-2 gap %.4f), we "
      "pick %d (ahead of the reference's token by %.4f)\n",
      who.c_str(), agree, want[agree], ref_gap, ours.tokens[agree], our_gap);
  if (require_exact)
    c.check(false, who + ": greedy tokens must match this reference exactly");
  else
    c.check(ref_gap < near_tie_logits && our_gap < near_tie_logits,
            who + ": the divergence is a near tie (both gaps < " + std::to_string(near_tie_logits) +
                ")");
}

}  // namespace bastion::test::smollm2
