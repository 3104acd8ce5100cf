// The engine against Hugging Face transformers: tests/fixtures/tiny-llama (F32, sharded, GQA,
// tied, transformers 5 config) and tiny-qwen2 (BF16, QKV biases), with reference.json made by
// tools/reference/make_tiny_models.py. For every prompt: last-position logits, all-position
// logits for one prompt, and 32 greedy tokens.
//
// Tolerance: normalised max error max|ours - ref| / max|ref| < 2e-5 (both compute in F32 from
// the same stored weights; measured errors are printed with -s). Greedy tokens must match
// exactly; on a mismatch the reference's top-2 gap at the first divergence is reported.

#include "kernels/engine/generator.hpp"
#include "kernels/model/hf/hf_loader.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

using namespace bastion::kernels;
using json = nlohmann::json;

namespace {

constexpr double logits_tolerance = 2e-5;  // about 10x the largest error measured

double normalised_error(const float* ours, const std::vector<float>& ref) {
  double num = 0.0, den = 1e-30;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    num = std::max(num, std::abs(static_cast<double>(ours[i]) - static_cast<double>(ref[i])));
    den = std::max(den, std::abs(static_cast<double>(ref[i])));
  }
  return num / den;
}

void check_fixture(const std::string& name) {
  const std::string dir = std::string{BASTION_FIXTURES_DIR} + "/" + name;
  std::ifstream in(dir + "/reference.json");
  REQUIRE(in.good());
  const json ref = json::parse(in);
  model m;
  const auto st = load_hf_model(dir, m);
  INFO(st.message());
  REQUIRE(st);
  auto be = make_cpu_backend();
  std::unique_ptr<kv_cache> kv;
  REQUIRE(kv_cache::create({m.config.n_layers, m.config.kv_dim(), 16, 64, 8}, kv));
  decoder dec{m, *be, *kv};

  const auto& prompts = ref.at("prompts");
  std::vector<generation_request> requests;
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    const auto ids = prompts[p].at("ids").get<std::vector<std::int32_t>>();
    const auto last = prompts[p].at("last_logits").get<std::vector<float>>();
    const bool all = prompts[p].contains("all_logits");
    REQUIRE(kv->add_sequence(p + 1));
    step_output out;
    REQUIRE(dec.step({{p + 1, ids, all}}, out));
    const double err_last = normalised_error(out.last_logits(0), last);
    WARN(name << " prompt " << p << " (" << ids.size()
              << " tokens): last-position logits normalised max error " << err_last);
    CHECK(err_last < logits_tolerance);
    if (all) {
      std::vector<float> flat;
      for (const auto& row : prompts[p].at("all_logits")) {
        const auto r = row.get<std::vector<float>>();
        flat.insert(flat.end(), r.begin(), r.end());
      }
      REQUIRE(flat.size() == out.logits.size());
      const double err_all = normalised_error(out.logits.data(), flat);
      WARN(name << " prompt " << p << ": all-position logits normalised max error " << err_all);
      CHECK(err_all < logits_tolerance);
    }
    kv->release(p + 1);
    generation_request r;
    r.prompt = ids;
    r.max_tokens = static_cast<std::int64_t>(prompts[p].at("greedy").size());
    requests.push_back(r);
  }

  // Greedy generation, all prompts batched; the reference never stops early (eos disabled).
  std::vector<generation_result> results;
  REQUIRE(generate(dec, requests, generator_options{}, results));
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    const auto want = prompts[p].at("greedy").get<std::vector<std::int32_t>>();
    const auto& got = results[p].tokens;
    std::size_t diverge = 0;
    while (diverge < want.size() && diverge < got.size() && want[diverge] == got[diverge])
      ++diverge;
    if (diverge < want.size()) {
      const auto& top2 = prompts[p].at("greedy_top2").at(diverge);
      WARN(name << " prompt " << p << ": first divergence at step " << diverge
                << ", reference top-2 gap " << top2[1].get<double>() - top2[3].get<double>());
    }
    INFO(name << " prompt " << p);
    CHECK(got == want);
  }
}

}  // namespace

TEST_CASE("tiny llama (F32, sharded, GQA, tied) matches transformers") {
  check_fixture("tiny-llama");
}

TEST_CASE("tiny qwen2 (BF16, QKV bias) matches transformers") { check_fixture("tiny-qwen2"); }
