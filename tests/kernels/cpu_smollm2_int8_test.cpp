// SmolLM2-135M-Instruct (Q4_1 GGUF) with the int8-activation numerics (the CPU backend's fast
// path) against llama.cpp, whose numerics they are (tests/fixtures/smollm2-llamacpp.json), and
// against transformers on the dequantized model (smollm2-transformers.json). Expected for
// both: the same greedy tokens, or a first divergence at a near tie (both engines' top-2 gap
// under near_tie_logits); logits of the reference's top-2 within logit_tolerance while the
// tokens agree. All five prompts run batched. Skips (exit 77) when the model is not fetched.

#include "kernels/cpu/cpu_backend.hpp"
#include "kernels/engine/decoder.hpp"
#include "kernels/model/gguf_loader.hpp"
#include "tests/support/model_path.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

using namespace bastion::kernels;
using json = nlohmann::json;

namespace {

// Measured: up to 1.5 against llama.cpp, 0.9 against transformers (logits of magnitude ~30);
// the exact numerics differ from llama.cpp by up to 1.02 (smollm2_reference_test).
constexpr double logit_tolerance = 2.0;
constexpr double near_tie_logits = 0.5;

int passed = 0, failed = 0;

void check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "PASS" : "FAIL", what.c_str());
  (ok ? passed : failed)++;
}

struct our_run {
  std::vector<std::int32_t> tokens;
  std::vector<std::vector<float>> logits;  // one row per step
};

void compare(const std::string& reference_name, const json& ref_prompt, const our_run& ours) {
  const auto label = ref_prompt.at("label").get<std::string>();
  const auto want = ref_prompt.at("generated").get<std::vector<std::int32_t>>();
  const auto& top2 = ref_prompt.at("top2");
  std::size_t agree = 0;
  double max_diff = 0.0;
  for (; agree < want.size() && ours.tokens[agree] == want[agree]; ++agree)
    for (int k : {0, 2}) {
      const auto id = static_cast<std::size_t>(top2[agree][k].get<std::int32_t>());
      max_diff = std::max(max_diff, std::abs(static_cast<double>(ours.logits[agree][id]) -
                                             top2[agree][k + 1].get<double>()));
    }
  const std::string who = reference_name + " " + label;
  std::printf("info: %s: %zu of %zu tokens agree; max |logit diff| on the reference's top-2 %.4g\n",
              who.c_str(), agree, want.size(), max_diff);
  check(max_diff < logit_tolerance,
        who + ": top-2 logits within " + std::to_string(logit_tolerance));
  if (agree == want.size()) return check(true, who + ": all greedy tokens match");
  const double ref_gap = top2[agree][1].get<double>() - top2[agree][3].get<double>();
  const auto& row = ours.logits[agree];
  const double our_gap = static_cast<double>(row[static_cast<std::size_t>(ours.tokens[agree])]) -
                         static_cast<double>(row[static_cast<std::size_t>(want[agree])]);
  std::printf("info: %s: divergence at step %zu, reference gap %.4f, ours %.4f\n", who.c_str(),
              agree, ref_gap, our_gap);
  check(ref_gap < near_tie_logits && our_gap < near_tie_logits, who + ": divergence at a near tie");
}

}  // namespace

int main() {
  const std::string path = bastion::test::smollm2_path();
  if (!bastion::test::file_exists(path)) {
    std::printf("SKIP: %s not found (run scripts/fetch-model)\n", path.c_str());
    return 77;
  }
  const std::string dir = BASTION_FIXTURES_DIR;
  std::ifstream llama_in(dir + "/smollm2-llamacpp.json"), hf_in(dir + "/smollm2-transformers.json");
  const json llamacpp = json::parse(llama_in), transformers = json::parse(hf_in);
  model m;
  if (auto st = load_gguf_model(path, m); !st) {
    std::printf("FAIL load: %s\n", st.message().c_str());
    return 1;
  }
  cpu_backend_options options;
  if (auto st = cpu_backend_options::from_environment(options); !st) {
    std::printf("FAIL options: %s\n", st.message().c_str());
    return 1;
  }
  options.numerics = cpu_matmul_numerics::int8_activations;
  std::unique_ptr<backend> be;
  if (auto st = make_cpu_backend(options, be); !st) {
    std::printf("FAIL backend: %s\n", st.message().c_str());
    return 1;
  }
  std::printf("info: kernels %s\n", std::string{cpu_kernel_set_name(options.kernels)}.c_str());
  std::unique_ptr<kv_cache> kv;
  if (!kv_cache::create({m.config.n_layers, m.config.kv_dim(), 16, 64, 8}, kv)) return 1;
  decoder dec{m, *be, *kv};
  const auto& prompts = llamacpp.at("prompts");
  const std::size_t n = prompts.size();
  const std::size_t steps = prompts[0].at("generated").size();
  std::vector<our_run> runs(n);
  std::vector<step_entry> batch;
  for (std::size_t i = 0; i < n; ++i) {
    if (!kv->add_sequence(i + 1)) return 1;
    batch.push_back({i + 1, prompts[i].at("prompt_ids").get<std::vector<std::int32_t>>(), false});
  }
  for (std::size_t s = 0; s < steps; ++s) {
    step_output out;
    if (auto st = dec.step(batch, out); !st) {
      std::printf("FAIL step %zu: %s\n", s, st.message().c_str());
      return 1;
    }
    for (std::size_t i = 0; i < n; ++i) {
      const float* row = out.last_logits(i);
      const auto next = static_cast<std::int32_t>(std::max_element(row, row + out.vocab) - row);
      runs[i].tokens.push_back(next);
      runs[i].logits.emplace_back(row, row + out.vocab);
      batch[i].tokens = {next};
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    compare("llama.cpp", prompts[i], runs[i]);
    compare("transformers(f32)", transformers.at("prompts")[i], runs[i]);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
