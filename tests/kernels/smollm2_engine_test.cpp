// The engine on the real SmolLM2-135M-Instruct (Q4_1 GGUF): a chat prompt asking for the
// capital of France is answered with "Paris" and ends at <|im_end|>; batched generation of
// several prompts equals one at a time. The prompt is built from the model's own vocabulary
// texts (no tokenizer needed). Prints decode tokens/s (one thread) for information.
// Skips (exit 77) when the model is not fetched.

#include "kernels/engine/generator.hpp"
#include "kernels/model/gguf_loader.hpp"
#include "tests/support/model_path.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>

using namespace bastion::kernels;

namespace {

int passed = 0, failed = 0;

void check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "PASS" : "FAIL", what.c_str());
  (ok ? passed : failed)++;
}

// Byte-level BPE texts: 'Ġ' (U+0120) is a space, 'Ċ' (U+010A) a newline.
std::string readable(const model& m, const std::vector<std::int32_t>& tokens) {
  std::string s;
  for (auto t : tokens) s += m.token_texts[static_cast<std::size_t>(t)];
  for (auto [from, to] : {std::pair<std::string, std::string>{"\xc4\xa0", " "}, {"\xc4\x8a", "\n"}})
    for (std::size_t at; (at = s.find(from)) != std::string::npos;) s.replace(at, from.size(), to);
  return s;
}

}  // namespace

int main() {
  const std::string path = bastion::test::smollm2_path();
  if (!bastion::test::file_exists(path)) {
    std::printf("SKIP: %s not found (run scripts/fetch-model)\n", path.c_str());
    return 77;
  }
  model m;
  const auto st = load_gguf_model(path, m);
  check(bool(st), "loads: " + st.message());
  if (!st) return 1;
  const auto& c = m.config;
  check(c.arch == architecture::llama && c.rope.style == rope_style::adjacent_pairs,
        "llama with adjacent-pair RoPE");
  check(c.n_layers == 30 && c.dim == 576 && c.n_heads == 9 && c.n_kv_heads == 3 &&
            c.head_dim == 64 && c.ffn_dim == 1536 && c.vocab == 49152 && c.context == 8192,
        "shape from metadata");
  check(c.rope.base == 100000.0f && c.rms_eps == 1e-5f, "rope base 1e5, eps 1e-5");
  check(c.tied_output && m.weights.output.type == tensor_type::q8_0,
        "output tied to the Q8_0 token embedding");
  auto eog = [&](std::int32_t id) {
    return std::find(m.end_of_generation_ids.begin(), m.end_of_generation_ids.end(), id) !=
           m.end_of_generation_ids.end();
  };
  check(eog(0) && eog(2), "<|endoftext|> (0) and <|im_end|> (2) end a generation");

  std::map<std::string, std::int32_t> id_of;
  for (std::size_t i = 0; i < m.token_texts.size(); ++i)
    id_of.emplace(m.token_texts[i], static_cast<std::int32_t>(i));
  auto chat = [&](const std::vector<std::string>& user_words) {
    std::vector<std::string> words = {"<|im_start|>", "user", "\xc4\x8a"};
    for (const auto& w : user_words)  // a leading space is the byte-level 'Ġ'
      words.push_back(w[0] == ' ' ? "\xc4\xa0" + w.substr(1) : w);
    for (const char* w : {"<|im_end|>", "\xc4\x8a", "<|im_start|>", "ass", "istant", "\xc4\x8a"})
      words.emplace_back(w);
    std::vector<std::int32_t> ids;
    for (const auto& w : words) ids.push_back(id_of.at(w));
    return ids;
  };

  auto be = make_cpu_backend();
  std::unique_ptr<kv_cache> kv;
  if (!kv_cache::create({c.n_layers, c.kv_dim(), 16, 256, 16}, kv)) return 1;
  decoder dec{m, *be, *kv};
  generator_options opts;
  opts.end_of_generation_ids = m.end_of_generation_ids;

  generation_request capital;
  capital.prompt = chat({"What", " is", " the", " capital", " of", " France", "?"});
  capital.max_tokens = 40;
  std::vector<generation_result> out;
  generation_stats stats;
  const auto t0 = std::chrono::steady_clock::now();
  check(bool(generate(dec, {capital}, opts, out, &stats)), "generates");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string answer = readable(m, out[0].tokens);
  std::printf("answer: %s\n", answer.c_str());
  check(answer.find("Paris") != std::string::npos, "the answer names Paris");
  check(out[0].reason == finish_reason::end_of_generation, "it ends at an end-of-turn token");

  // The same question as the real tokenizer encodes it with SmolLM2's chat template (system
  // prompt included): ids from tests/fixtures/smollm2-llamacpp.json (made by llama.cpp).
  std::ifstream fixture_in(std::string{BASTION_FIXTURES_DIR} + "/smollm2-llamacpp.json");
  const auto fixture = nlohmann::json::parse(fixture_in);
  std::vector<generation_request> fixture_reqs;
  for (const auto& p : fixture.at("prompts")) {
    generation_request r;
    r.prompt = p.at("prompt_ids").get<std::vector<std::int32_t>>();
    r.max_tokens = 40;
    fixture_reqs.push_back(r);
  }
  check(bool(generate(dec, {fixture_reqs[0]}, opts, out)), "generates from tokenizer ids");
  const std::string templated = readable(m, out[0].tokens);
  std::printf("answer (chat template): %s\n", templated.c_str());
  check(templated.find("Paris") != std::string::npos &&
            out[0].reason == finish_reason::end_of_generation,
        "the templated question is answered with Paris and ends at <|im_end|>");

  // Batched vs one at a time, greedy, on eight prompts of different lengths.
  std::vector<generation_request> reqs(3);
  reqs[0] = capital;
  reqs[1].prompt = chat({"Name", " three", " colors", "."});
  reqs[2].prompt = chat({"Hello", "!"});
  reqs.insert(reqs.end(), fixture_reqs.begin(), fixture_reqs.end());
  for (auto& r : reqs) r.max_tokens = 12;
  std::vector<generation_result> alone, together;
  generator_options one = opts;
  one.batch_sequences_max = 1;
  check(bool(generate(dec, reqs, one, alone)), "one at a time runs");
  const auto t1 = std::chrono::steady_clock::now();
  generation_stats batched_stats;
  check(bool(generate(dec, reqs, opts, together, &batched_stats)), "batched runs");
  const double batched_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  bool same = true;
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    std::printf("prompt %zu: %s\n", i, readable(m, together[i].tokens).c_str());
    same = same && alone[i].tokens == together[i].tokens && !together[i].tokens.empty();
  }
  check(same, "batched generation equals one at a time");
  check(kv->blocks_used() == 0, "every KV block is back in the pool");

  // Decode speed, for information: 32 single-token steps after a prefill, one sequence.
  double decode_s = 0.0;
  const int decode_steps = 32;
  {
    step_output o;
    const sequence_id seq = 1000;
    check(bool(kv->add_sequence(seq)) && bool(dec.step({{seq, capital.prompt, false}}, o)),
          "prefill for the decode timing");
    const auto d0 = std::chrono::steady_clock::now();
    for (int i = 0; i < decode_steps; ++i) {
      const float* l = o.last_logits(0);
      const auto next = static_cast<std::int32_t>(std::max_element(l, l + o.vocab) - l);
      if (!dec.step({{seq, {next}, false}}, o)) break;
    }
    decode_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - d0).count();
    kv->release(seq);
  }
  std::printf(
      "info: decode %.2f tokens/s (%d steps of one sequence, one thread, reference "
      "kernels)\n",
      decode_steps / decode_s, decode_steps);
  std::printf(
      "info: first request %.2f s for %lld prompt + %lld decoded tokens (%.1f tokens/s "
      "overall, one thread, reference kernels)\n",
      seconds, static_cast<long long>(stats.prefill_tokens),
      static_cast<long long>(stats.decode_tokens),
      static_cast<double>(stats.prefill_tokens + stats.decode_tokens) / seconds);
  std::printf("info: batched run of %zu requests: %lld steps, %.2f s\n", reqs.size(),
              static_cast<long long>(batched_stats.steps), batched_s);
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
