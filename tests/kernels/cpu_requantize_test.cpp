// kernels/model/requantize: F32 / BF16 weights converted to Q8_0 at load, measured against the
// unquantized model on the transformers fixtures (tests/fixtures/tiny-llama: F32, tiny-qwen2:
// BF16). For every reference prompt: last-position logits of the requantized model against the
// unquantized one (normalised max error, top-1 agreement), with the exact and the int8
// numerics; and greedy generations. Run with -s to see the measured figures.
//
// Measured (normalised max error of the last-position logits, exact / int8 numerics):
// tiny-llama 0.045 / 0.049, tiny-qwen2 0.025 / 0.041; top-1 agrees on every prompt. Greedy
// runs part early on these random models, whose logits are nearly flat (near ties), so only
// the agreement is printed. Bound: about twice the measured error; a broken quantizer gives
// errors of order 1.

#include "kernels/cpu/cpu_backend.hpp"
#include "kernels/engine/decoder.hpp"
#include "kernels/engine/resident_weights.hpp"
#include "kernels/model/hf/hf_loader.hpp"
#include "kernels/model/requantize.hpp"
#include "tests/support/numeric.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>

using namespace bastion::kernels;
using json = nlohmann::json;

using bastion::test::normalised_error;
using bastion::test::random_vector;

namespace {

constexpr double q8_logits_bound = 0.1;

struct prompt_result {
  std::vector<float> last_logits;
  std::vector<std::int32_t> greedy;
};

// Last-position logits of the prompt, then `steps` greedy tokens.
prompt_result run_prompt(const model& m, cpu_matmul_numerics numerics,
                         const std::vector<std::int32_t>& ids, std::size_t steps) {
  std::unique_ptr<backend> be;
  REQUIRE(make_cpu_backend({1, cpu_kernel_set::automatic, numerics}, be));
  std::unique_ptr<kv_cache> kv;
  REQUIRE(kv_cache::create({m.config.n_layers, m.config.kv_dim(), 16, 64, 2}, kv));
  decoder dec{m, *be, *kv};
  REQUIRE(kv->add_sequence(1));
  prompt_result r;
  step_output out;
  REQUIRE(dec.step({{1, ids, false}}, out));
  r.last_logits.assign(out.last_logits(0), out.last_logits(0) + out.vocab);
  for (std::size_t s = 0; s < steps; ++s) {
    const float* row = out.last_logits(0);
    const auto next = static_cast<std::int32_t>(std::max_element(row, row + out.vocab) - row);
    r.greedy.push_back(next);
    REQUIRE(dec.step({{1, {next}, false}}, out));
  }
  return r;
}

std::int64_t argmax(const std::vector<float>& v) {
  return std::max_element(v.begin(), v.end()) - v.begin();
}

void measure(const std::string& name) {
  const std::string dir = std::string{BASTION_FIXTURES_DIR} + "/" + name;
  std::ifstream in(dir + "/reference.json");
  REQUIRE(in.good());
  const json ref = json::parse(in);
  model original, requantized;
  REQUIRE(load_hf_model(dir, original));
  REQUIRE(load_hf_model(dir, requantized));
  requantize_report report;
  REQUIRE(requantize_to_q8_0(requantized, &report));
  // Every matrix is Q8_0 now; the tied output still is the embedding.
  CHECK(requantized.weights.token_embd.type == tensor_type::q8_0);
  CHECK(requantized.weights.output.type == tensor_type::q8_0);
  for (const auto& L : requantized.weights.layers)
    for (const auto* w : layer_projections(L)) CHECK(w->type == tensor_type::q8_0);
  if (original.config.tied_output)
    CHECK(requantized.weights.output.data == requantized.weights.token_embd.data);
  CHECK(report.matrices == 1 + (original.config.tied_output ? 0 : 1) +
                               7 * static_cast<std::int64_t>(original.weights.layers.size()));
  CHECK(report.bytes_after < report.bytes_before);
  WARN(name << ": " << report.matrices << " matrices, " << report.bytes_before << " -> "
            << report.bytes_after << " bytes");

  for (auto numerics : {cpu_matmul_numerics::exact_f32, cpu_matmul_numerics::int8_activations}) {
    const char* numerics_name =
        numerics == cpu_matmul_numerics::exact_f32 ? "exact" : "int8 activations";
    double worst = 0.0;
    int top1_agree = 0, greedy_agree = 0, greedy_total = 0;
    const auto& prompts = ref.at("prompts");
    for (const auto& p : prompts) {
      const auto ids = p.at("ids").get<std::vector<std::int32_t>>();
      const auto steps = p.at("greedy").size();
      const auto base = run_prompt(original, cpu_matmul_numerics::exact_f32, ids, steps);
      const auto q8 = run_prompt(requantized, numerics, ids, steps);
      worst = std::max(worst, normalised_error(q8.last_logits, base.last_logits));
      top1_agree += argmax(q8.last_logits) == argmax(base.last_logits);
      for (std::size_t s = 0; s < steps && q8.greedy[s] == base.greedy[s]; ++s) ++greedy_agree;
      greedy_total += static_cast<int>(steps);
    }
    WARN(name << " Q8_0 weights, " << numerics_name
              << " vs unquantized: last-position logits normalised max error " << worst
              << "; top-1 agrees on " << top1_agree << " of " << prompts.size()
              << " prompts; greedy prefix agreement " << greedy_agree << " of " << greedy_total
              << " tokens");
    CHECK(worst < q8_logits_bound);
    CHECK(top1_agree == static_cast<int>(prompts.size()));
  }
}

}  // namespace

TEST_CASE("requantized tiny-llama (F32 -> Q8_0) stays close to the F32 model") {
  measure("tiny-llama");
}

TEST_CASE("requantized tiny-qwen2 (BF16 -> Q8_0) stays close to the BF16 model") {
  measure("tiny-qwen2");
}

TEST_CASE("requantize refuses non-finite weights and leaves the model unchanged") {
  model m;
  REQUIRE(load_hf_model(std::string{BASTION_FIXTURES_DIR} + "/tiny-llama", m));
  auto& L = m.weights.layers[1];
  std::vector<float> poisoned(static_cast<std::size_t>(L.w_up.rows * L.w_up.cols), 0.5f);
  poisoned[static_cast<std::size_t>(3 * L.w_up.cols + 7)] = std::numeric_limits<float>::quiet_NaN();
  L.w_up = {tensor_type::f32, poisoned.data(), L.w_up.rows, L.w_up.cols};
  const auto before = m.weights.layers[0].wq;
  const auto storage_before = m.storage.size();
  const status s = requantize_to_q8_0(m);
  INFO(s.message());
  CHECK(s.code() == status_code::invalid_argument);
  CHECK(s.message().find("layer 1 w_up row 3") != std::string::npos);
  CHECK(m.weights.layers[0].wq.data == before.data);
  CHECK(m.weights.layers[0].wq.type == before.type);
  CHECK(m.storage.size() == storage_before);
}

TEST_CASE("requantize leaves quantized and odd-width matrices alone") {
  model m;
  REQUIRE(load_hf_model(std::string{BASTION_FIXTURES_DIR} + "/tiny-llama", m));
  REQUIRE(requantize_to_q8_0(m));
  const auto first = m.weights.layers[0].wq.data;
  requantize_report again;
  REQUIRE(requantize_to_q8_0(m, &again));  // already Q8_0: nothing to do
  CHECK(again.matrices == 0);
  CHECK(m.weights.layers[0].wq.data == first);
}
