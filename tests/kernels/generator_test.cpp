// The generation driver on a tiny random model: many requests batched together produce the
// same tokens as each run alone (greedy and seeded sampling), and each request stops for the
// right reason: end-of-generation token, stop string, max tokens, context, or an error.

#include "kernels/engine/generator.hpp"
#include "kernels/model/gguf_loader.hpp"
#include "tests/kernels/tiny_engine.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

using namespace bastion::kernels;

namespace {

using bastion::test::tiny_engine;

std::vector<generation_request> mixed_requests() {
  std::vector<generation_request> r(6);
  const std::vector<std::vector<std::int32_t>> prompts = {
      {5, 17, 42, 8, 91, 33, 0, 64, 12},
      {60},
      {7, 7, 7, 7},
      {1, 2, 4, 8, 16, 32, 64},
      {90, 9},
      {33, 44, 55, 66, 77, 88, 11, 22, 30, 40, 50, 60, 70}};
  for (std::size_t i = 0; i < r.size(); ++i) {
    r[i].prompt = prompts[i];
    r[i].max_tokens = 6 + static_cast<std::int64_t>(i) * 3;
    if (i % 2) {  // half of them sample, each with its own seed
      r[i].sampling.temperature = 0.9f;
      r[i].sampling.top_k = 20;
      r[i].sampling.top_p = 0.95f;
      r[i].sampling.seed = 1000 + i;
    }
    if (i == 4) r[i].sampling.repetition_penalty = 1.3f;
  }
  return r;
}

}  // namespace

TEST_CASE("batched generation gives the same tokens as one request at a time") {
  tiny_engine e;
  const auto requests = mixed_requests();
  generator_options alone;
  alone.batch_sequences_max = 1;
  std::vector<generation_result> one_by_one;
  REQUIRE(generate(*e.dec, requests, alone, one_by_one));

  generator_options batched;
  batched.batch_sequences_max = 4;
  batched.step_tokens_max = 9;    // forces prefill chunks to share steps with decodes
  batched.prefill_chunk_max = 5;  // and prompts to arrive in several chunks
  std::vector<generation_result> together;
  generation_stats stats;
  REQUIRE(generate(*e.dec, requests, batched, together, &stats));
  REQUIRE(together.size() == requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    INFO("request " << i);
    CHECK(together[i].reason == finish_reason::max_tokens);
    CHECK(static_cast<std::int64_t>(together[i].tokens.size()) == requests[i].max_tokens);
    CHECK(together[i].tokens == one_by_one[i].tokens);
  }
  CHECK(stats.steps < 60);  // really batched: one at a time needs > 70 steps for these
  CHECK(e.kv->blocks_used() == 0);
  CHECK(e.kv->sequences() == 0);
}

TEST_CASE("sampled generation repeats with the same seed and changes with another") {
  tiny_engine e;
  generation_request r;
  r.prompt = {3, 14, 15, 92};
  r.max_tokens = 16;
  r.sampling.temperature = 1.5f;
  r.sampling.seed = 5;
  auto other = r;
  other.sampling.seed = 6;
  std::vector<generation_result> out;
  REQUIRE(generate(*e.dec, {r, r, other}, generator_options{}, out));
  CHECK(out[0].tokens == out[1].tokens);
  CHECK(out[0].tokens != out[2].tokens);
}

TEST_CASE("generation stops at end-of-generation tokens, stop strings, max tokens, context") {
  tiny_engine e;
  generation_request r;
  r.prompt = {10, 20, 30};
  r.max_tokens = 12;
  std::vector<generation_result> free_run;
  REQUIRE(generate(*e.dec, {r}, generator_options{}, free_run));
  REQUIRE(free_run[0].tokens.size() == 12);
  const auto& toks = free_run[0].tokens;

  SECTION("an end-of-generation id ends it, and is not part of the output") {
    generator_options o;
    o.end_of_generation_ids = {toks[4]};
    std::vector<generation_result> out;
    REQUIRE(generate(*e.dec, {r}, o, out));
    CHECK(out[0].reason == finish_reason::end_of_generation);
    const auto first = std::find(toks.begin(), toks.end(), toks[4]) - toks.begin();
    CHECK(out[0].tokens == std::vector<std::int32_t>(toks.begin(), toks.begin() + first));
  }
  SECTION("a stop string ends it; the text stops before the string") {
    generator_options o;
    o.detokenize = [](const std::vector<std::int32_t>& t) {
      std::string s;
      for (auto id : t) s += "<" + std::to_string(id) + ">";
      return s;
    };
    auto req = r;
    req.stop_strings = {"<" + std::to_string(toks[6]) + ">", "never-appears"};
    std::vector<generation_result> out;
    REQUIRE(generate(*e.dec, {req}, o, out));
    CHECK(out[0].reason == finish_reason::stop_string);
    const auto first = std::find(toks.begin(), toks.end(), toks[6]) - toks.begin();
    CHECK(out[0].tokens.size() == static_cast<std::size_t>(first + 1));
    CHECK(out[0].text == o.detokenize({toks.begin(), toks.begin() + first}));
  }
  SECTION("the model's context ends it") {
    e.m.config.context = 8;
    std::vector<generation_result> out;
    REQUIRE(generate(*e.dec, {r}, generator_options{}, out));
    CHECK(out[0].reason == finish_reason::context_full);
    CHECK(out[0].tokens.size() == 6);  // 3 prompt tokens + 5 fed back + the last one sampled
    CHECK(out[0].tokens == std::vector<std::int32_t>(toks.begin(), toks.begin() + 6));
  }
}

TEST_CASE("requests that cannot run get an error result; the others still run") {
  tiny_engine e{/*blocks=*/6};  // 24 token slots
  generation_request good;
  good.prompt = {1, 2, 3};
  good.max_tokens = 4;
  auto too_big = good;
  too_big.max_tokens = 40;  // 43 tokens need 11 blocks
  auto empty = good;
  empty.prompt.clear();
  auto bad_token = good;
  bad_token.prompt = {1, 96};
  auto bad_sampling = good;
  bad_sampling.sampling.top_p = 0.0f;
  auto needs_detok = good;
  needs_detok.stop_strings = {"x"};
  std::vector<generation_result> out;
  REQUIRE(generate(*e.dec, {good, too_big, empty, bad_token, bad_sampling, needs_detok, good},
                   generator_options{}, out));
  CHECK(out[0].reason == finish_reason::max_tokens);
  CHECK(out[6].tokens == out[0].tokens);
  for (std::size_t i = 1; i <= 5; ++i) {
    INFO("request " << i << ": " << out[i].error.message());
    CHECK(out[i].reason == finish_reason::error);
    CHECK_FALSE(out[i].error);
  }
  CHECK(out[1].error.code() == status_code::resource_exhausted);
  CHECK(e.kv->blocks_used() == 0);
}

TEST_CASE("requests wait for KV blocks instead of failing when the cache is busy") {
  tiny_engine e{/*blocks=*/5};  // room for one 3 + 12 token request (4 blocks) at a time
  generation_request r;
  r.prompt = {4, 5, 6};
  r.max_tokens = 12;
  std::vector<generation_result> out;
  generator_options o;
  o.batch_sequences_max = 8;
  REQUIRE(generate(*e.dec, {r, r, r}, o, out));
  for (const auto& res : out) {
    CHECK(res.reason == finish_reason::max_tokens);
    CHECK(res.tokens == out[0].tokens);
  }
}
