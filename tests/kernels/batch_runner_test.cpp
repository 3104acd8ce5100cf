// Continuous batching one step at a time: requests that join mid-run give the same tokens as
// requests run alone; steps carry several sequences; cancel and preempt free KV blocks at
// once; a preempted request resumed with its tokens ends where it would have; streamed text
// never shows a stop string, even split across tokens.

#include "kernels/engine/batch_runner.hpp"
#include "kernels/model/gguf_loader.hpp"
#include "tests/kernels/host_as_device_backend.hpp"
#include "tests/kernels/tiny_engine.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>
#include <map>

using namespace bastion::kernels;

namespace {

using bastion::test::tiny_engine;

// Token i reads as a letter, so texts and stop strings are easy to reason about.
std::string detok(const std::vector<std::int32_t>& ids) {
  std::string s;
  for (auto id : ids) s += static_cast<char>('a' + id % 26);
  return s;
}

runner_request make_request(std::uint64_t id, std::vector<std::int32_t> prompt,
                            std::int64_t max_tokens) {
  runner_request r;
  r.id = id;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  if (id % 2) {
    r.sampling.temperature = 0.8f;
    r.sampling.top_k = 20;
    r.sampling.seed = 77 + id;
  }
  return r;
}

struct outcome {
  std::vector<std::int32_t> tokens;
  std::string text;
  finish_reason reason = finish_reason::error;
  bool finished = false;
};

void drain(batch_runner& runner, std::map<std::uint64_t, outcome>& out, int steps_max = 1000) {
  std::vector<runner_event> events;
  for (int i = 0; i < steps_max && !runner.idle(); ++i) {
    events.clear();
    REQUIRE(runner.step(events));
    for (auto& e : events) {
      auto& o = out[e.id];
      o.text += e.text;
      if (e.what == runner_event::kind::token) {
        o.tokens.push_back(e.token);
      } else {
        o.reason = e.reason;
        o.finished = true;
      }
    }
  }
  REQUIRE(runner.idle());
}

runner_options options() {
  runner_options o;
  o.batch_sequences_max = 8;
  o.step_tokens_max = 64;
  o.prefill_chunk_max = 5;
  o.detokenize = detok;
  return o;
}

}  // namespace

TEST_CASE("requests joining between steps give the same tokens as each run alone") {
  const std::vector<std::vector<std::int32_t>> prompts = {
      {5, 17, 42, 8, 91, 33, 0, 64, 12}, {60}, {7, 7, 7, 7}, {1, 2, 4, 8, 16, 32, 64}, {90, 9}};
  std::map<std::uint64_t, outcome> alone;
  for (std::uint64_t i = 0; i < prompts.size(); ++i) {
    tiny_engine e;
    batch_runner r{*e.dec, options()};
    REQUIRE(r.add(make_request(i, prompts[i], 8 + static_cast<std::int64_t>(i))));
    drain(r, alone);
  }
  tiny_engine e;
  batch_runner r{*e.dec, options()};
  std::map<std::uint64_t, outcome> together;
  std::vector<runner_event> events;
  for (std::uint64_t i = 0; i < prompts.size(); ++i) {
    REQUIRE(r.add(make_request(i, prompts[i], 8 + static_cast<std::int64_t>(i))));
    events.clear();
    REQUIRE(r.step(events));  // each new request joins a batch already running
    for (auto& ev : events) {
      auto& o = together[ev.id];
      o.text += ev.text;
      if (ev.what == runner_event::kind::token)
        o.tokens.push_back(ev.token);
      else
        o.finished = true;
    }
  }
  drain(r, together);
  CHECK(r.stats().max_step_sequences > 1);
  for (std::uint64_t i = 0; i < prompts.size(); ++i) {
    INFO("request " << i);
    CHECK(together[i].tokens == alone[i].tokens);
    CHECK(together[i].text == detok(together[i].tokens));
    CHECK(together[i].finished);
  }
  CHECK(e.kv->blocks_used() == 0);
}

// The tokens of greedy decoding worked out by hand: whole logits rows from the decoder, the
// sampler's argmax over each, one step at a time.
std::vector<std::int32_t> greedy_by_logits(const std::vector<std::int32_t>& prompt,
                                           std::int64_t n) {
  tiny_engine e;
  REQUIRE(e.kv->add_sequence(1));
  sampler greedy{sampling_params{}};
  std::vector<std::int32_t> out;
  std::vector<std::int32_t> next = prompt;
  while (static_cast<std::int64_t>(out.size()) < n) {
    step_output o;
    REQUIRE(e.dec->step({{1, next, false}}, o, step_results::logits));
    REQUIRE(o.logits.size() == static_cast<std::size_t>(o.vocab));
    next = {greedy.sample(o.last_logits(0), o.vocab, {})};
    out.push_back(next[0]);
  }
  return out;
}

TEST_CASE("greedy steps let the backend pick the tokens, and pick the argmax of the logits") {
  const std::vector<std::int32_t> prompt = {5, 17, 42, 8, 91, 33, 0, 64, 12};
  tiny_engine e;
  batch_runner r{*e.dec, options()};
  REQUIRE(r.add(make_request(0, prompt, 10)));  // even ids are greedy
  REQUIRE(r.add(make_request(2, {60, 3}, 6)));
  std::map<std::uint64_t, outcome> out;
  drain(r, out);
  CHECK(r.stats().greedy_steps == r.stats().steps);
  CHECK(r.stats().steps > 1);
  CHECK(out[0].tokens == greedy_by_logits(prompt, 10));
  CHECK(out[2].tokens == greedy_by_logits({60, 3}, 6));

  // A sampled request or a repetition penalty needs the logits: those steps bring them back.
  tiny_engine e2;
  batch_runner mixed{*e2.dec, options()};
  REQUIRE(mixed.add(make_request(0, prompt, 10)));
  REQUIRE(mixed.add(make_request(1, {60, 3}, 3)));  // odd: temperature 0.8, shorter
  std::map<std::uint64_t, outcome> mixed_out;
  drain(mixed, mixed_out);
  CHECK(mixed.stats().greedy_steps > 0);                    // after request 1 ended
  CHECK(mixed.stats().greedy_steps < mixed.stats().steps);  // while it ran
  CHECK(mixed_out[0].tokens == out[0].tokens);

  tiny_engine e3;
  batch_runner penalised{*e3.dec, options()};
  auto req = make_request(0, prompt, 4);
  req.sampling.repetition_penalty = 1.3f;
  REQUIRE(penalised.add(std::move(req)));
  std::map<std::uint64_t, outcome> penalised_out;
  drain(penalised, penalised_out);
  // Only the first prefill chunk (5 of the 9 prompt tokens) picks nothing: the one step that
  // brings no logits back.
  CHECK(penalised.stats().greedy_steps == 1);
  CHECK(penalised.stats().steps == 1 + 4);
}

namespace {

// Requests with a repetition penalty (above and below 1; greedy and sampled at several
// temperatures, seeds, top-k and top-p; prompts repeating tokens, some long enough to be
// prefilled in chunks) beside requests without one. Each penalty p is taken to `power`: 1 as
// given, 0 for none, 2 for about what applying it twice does.
std::vector<runner_request> penalised_requests(bool sampled, int power = 1) {
  const std::vector<std::vector<std::int32_t>> prompts = {
      {3, 17, 3, 3, 42}, {60, 61}, {7, 7, 7, 7, 9, 10, 11, 7, 12}, {90, 1, 90}, {5, 6, 5, 6, 5}};
  const float penalties[] = {1.5f, 1.0f, 1.3f, 0.7f, 2.0f, 1.15f};
  std::vector<runner_request> out;
  for (std::uint64_t i = 0; i < 10; ++i) {
    runner_request r = make_request(100 + i, prompts[i % prompts.size()], 14);
    r.sampling = sampling_params{};
    if (sampled && i % 2 == 1) {
      r.sampling.temperature = 0.5f + 0.3f * static_cast<float>(i % 4);
      r.sampling.top_k = i % 3 == 0 ? 6 : 0;
      r.sampling.top_p = i == 5 ? 0.7f : 1.0f;
      r.sampling.seed = 4242 + i;
    }
    const float p = penalties[i % 6];
    r.sampling.repetition_penalty = power == 0 ? 1.0f : power == 1 ? p : p * p;
    out.push_back(std::move(r));
  }
  return out;
}

struct device_run {
  std::map<std::uint64_t, outcome> out;
  runner_stats stats;
  int penalty_calls = 0;
  int candidate_calls = 0;
};

std::map<std::uint64_t, outcome> run_on_host(const std::vector<runner_request>& requests) {
  tiny_engine e;
  batch_runner r{*e.dec, options()};
  for (const auto& q : requests) REQUIRE(r.add(q));
  std::map<std::uint64_t, outcome> out;
  drain(r, out);
  CHECK(r.stats().penalised_rows == 0);  // a host backend's sampler applies the penalty
  CHECK(r.stats().candidate_draws == 0);  // and samples whole rows
  return out;
}

device_run run_on_device(const std::vector<runner_request>& requests) {
  tiny_engine e;  // for its model
  bastion::test::host_as_device_backend device;
  std::unique_ptr<kv_cache> kv;
  REQUIRE(kv_cache::create({e.m.config.n_layers, e.m.config.kv_dim(), 4, 64, 16}, device, kv));
  decoder dec{e.m, device, *kv};
  batch_runner r{dec, options()};
  for (const auto& q : requests) REQUIRE(r.add(q));
  device_run run;
  drain(r, run.out);
  run.stats = r.stats();
  run.penalty_calls = device.penalty_calls;
  run.candidate_calls = device.candidate_calls;
  return run;
}

std::int64_t tokens_of(const std::map<std::uint64_t, outcome>& out,
                       const std::vector<runner_request>& requests, bool with_penalty) {
  std::int64_t n = 0;
  for (const auto& q : requests)
    if ((q.sampling.repetition_penalty != 1.0f) == with_penalty)
      n += static_cast<std::int64_t>(out.at(q.id).tokens.size());
  return n;
}

}  // namespace

TEST_CASE("on a device backend, sampled rows are drawn from candidates and match the host") {
  // The same requests (greedy, sampled with and without top-k / top-p, one with a repetition
  // penalty) on the CPU backend and on the CPU backend dressed as a device: the device path
  // keeps the logits in backend memory and sends back greedy tokens and candidates; the tokens
  // must be the same as the host path's, which samples from whole rows.
  auto requests = [] {
    std::vector<runner_request> out;
    for (std::uint64_t i = 0; i < 6; ++i) {
      runner_request r = make_request(i, {static_cast<std::int32_t>(3 + i), 17, 42, 8}, 12);
      r.sampling.temperature = i == 0 ? 0.0f : 0.7f + 0.2f * static_cast<float>(i);
      r.sampling.top_k = i == 2 ? 5 : 0;
      r.sampling.top_p = i == 3 ? 0.6f : 1.0f;
      r.sampling.repetition_penalty = i == 4 ? 1.2f : 1.0f;
      r.sampling.seed = 1000 + i;
      out.push_back(std::move(r));
    }
    return out;
  };
  const auto host_out = run_on_host(requests());
  const auto device = run_on_device(requests());
  for (std::uint64_t i = 0; i < 6; ++i) {
    INFO("request " << i);
    CHECK(device.out.at(i).tokens == host_out.at(i).tokens);
    CHECK(device.out.at(i).finished);
  }
  CHECK(device.candidate_calls > 0);
  CHECK(device.stats.candidate_draws > 0);
  // The penalised request gets its penalty on the device at each of its tokens and is drawn
  // from its candidates like the others (a tiny model's flat rows may send a few draws to the
  // row: at most a handful).
  CHECK(device.stats.penalised_rows == static_cast<std::int64_t>(device.out.at(4).tokens.size()));
  CHECK(device.stats.candidate_draws > device.stats.rows_downloaded);
}

TEST_CASE("penalised rows on a device backend get the penalty there and match the host") {
  for (const bool sampled : {false, true}) {
    INFO((sampled ? "greedy and sampled requests" : "greedy requests"));
    const auto requests = penalised_requests(sampled);
    const auto host_out = run_on_host(requests);
    const auto device = run_on_device(requests);
    for (const auto& q : requests) {
      INFO("request " << q.id);
      CHECK(device.out.at(q.id).tokens == host_out.at(q.id).tokens);
      CHECK(device.out.at(q.id).finished);
    }
    // Every token of a penalised request was picked from logits penalised on the device, one
    // backend call per step.
    CHECK(device.stats.penalised_rows == tokens_of(device.out, requests, true));
    CHECK(device.penalty_calls > 0);
    CHECK(device.penalty_calls <= device.stats.steps);
    if (!sampled) {
      // Greedy rows take the argmax of their penalised logits: no row comes back.
      CHECK(device.stats.rows_downloaded == 0);
      CHECK(device.stats.candidate_draws == 0);
    } else {
      // Sampled rows, penalised or not, are drawn from their candidates; only a draw they
      // cannot decide brings its row back (the tiny model's flat rows: a handful).
      std::int64_t sampled_tokens = 0;
      for (const auto& q : requests)
        if (q.sampling.temperature > 0.0f)
          sampled_tokens += static_cast<std::int64_t>(device.out.at(q.id).tokens.size());
      CHECK(device.stats.candidate_draws + device.stats.rows_downloaded == sampled_tokens);
      CHECK(device.stats.candidate_draws > 4 * device.stats.rows_downloaded);
    }

    // The penalty matters here: the same requests without it, or with it applied twice (about
    // the square of each penalty), give other tokens, so a penalty skipped or doubled on
    // either path would not match.
    const auto off = run_on_host(penalised_requests(sampled, 0));
    const auto twice = run_on_host(penalised_requests(sampled, 2));
    int differ_off = 0, differ_twice = 0, penalised = 0;
    for (const auto& q : requests) {
      if (q.sampling.repetition_penalty == 1.0f) continue;
      ++penalised;
      differ_off += off.at(q.id).tokens != host_out.at(q.id).tokens ? 1 : 0;
      differ_twice += twice.at(q.id).tokens != host_out.at(q.id).tokens ? 1 : 0;
    }
    CHECK(differ_off >= penalised / 2);
    CHECK(differ_twice >= penalised / 2);
  }
}

TEST_CASE("cancel and preempt free the KV blocks at once; a resumed request ends the same") {
  tiny_engine e;
  batch_runner r{*e.dec, options()};
  REQUIRE(r.add(make_request(2, {3, 1, 4, 1, 5, 9, 2, 6}, 20)));
  REQUIRE(r.add(make_request(4, {2, 7, 1, 8}, 20)));
  std::vector<runner_event> events;
  for (int i = 0; i < 6; ++i) REQUIRE(r.step(events));
  const auto used_both = e.kv->blocks_used();
  REQUIRE(used_both > 0);
  CHECK(r.cancel(4));
  CHECK_FALSE(r.cancel(4));
  CHECK(e.kv->blocks_used() < used_both);

  std::vector<std::int32_t> generated;
  REQUIRE(r.preempt(2, generated));
  CHECK(e.kv->blocks_used() == 0);
  CHECK(r.idle());
  REQUIRE(!generated.empty());

  // Resume: prompt + generated, the remaining budget. Request 2 is greedy, so generated +
  // resumed must equal an uninterrupted run.
  std::map<std::uint64_t, outcome> resumed, straight;
  const auto req = make_request(2, {3, 1, 4, 1, 5, 9, 2, 6}, 20);
  auto cont = req;
  cont.prompt.insert(cont.prompt.end(), generated.begin(), generated.end());
  cont.max_tokens = 20 - static_cast<std::int64_t>(generated.size());
  REQUIRE(r.add(cont));
  drain(r, resumed);
  {
    tiny_engine e2;
    batch_runner r2{*e2.dec, options()};
    REQUIRE(r2.add(req));
    drain(r2, straight);
  }
  auto joined = generated;
  joined.insert(joined.end(), resumed[2].tokens.begin(), resumed[2].tokens.end());
  CHECK(joined == straight[2].tokens);
  CHECK(resumed[2].reason == straight[2].reason);
}

TEST_CASE("stop strings end a request and are never streamed, even split across tokens") {
  tiny_engine e;
  // Find what the model says greedily, then stop on a two-letter piece of it.
  std::map<std::uint64_t, outcome> free_run;
  {
    batch_runner r{*e.dec, options()};
    auto req = make_request(0, {11, 12, 13}, 12);
    REQUIRE(r.add(req));
    drain(r, free_run);
  }
  const std::string full = free_run[0].text;
  REQUIRE(full.size() >= 6);
  const std::string stop = full.substr(3, 2);
  batch_runner r{*e.dec, options()};
  auto req = make_request(0, {11, 12, 13}, 12);
  req.stop_strings = {stop};
  REQUIRE(r.add(req));
  std::map<std::uint64_t, outcome> stopped;
  drain(r, stopped);
  CHECK(stopped[0].reason == finish_reason::stop_string);
  CHECK(stopped[0].text == full.substr(0, full.find(stop)));
  CHECK(stopped[0].text.find(stop) == std::string::npos);
}

TEST_CASE("the runner refuses requests it cannot run, with reasons") {
  tiny_engine e{8};
  batch_runner r{*e.dec, options()};
  CHECK(r.add(make_request(1, {}, 4)).code() == status_code::invalid_argument);
  CHECK_THAT(r.add(make_request(1, {1000}, 4)).message(),
             Catch::Contains("outside the vocabulary"));
  REQUIRE(r.add(make_request(1, {1, 2}, 4)));
  CHECK_THAT(r.add(make_request(1, {1, 2}, 4)).message(), Catch::Contains("already running"));
  auto huge = make_request(3, std::vector<std::int32_t>(40, 1), 20);
  CHECK(r.add(huge).code() == status_code::resource_exhausted);  // 60 tokens > 8 blocks x 4
  auto bad = make_request(5, {1}, 4);
  bad.sampling.top_p = 0.0f;
  CHECK(r.add(bad).code() == status_code::invalid_argument);
  auto empty_stop = make_request(7, {1}, 4);
  empty_stop.stop_strings = {""};
  CHECK_THAT(r.add(empty_stop).message(), Catch::Contains("empty stop string"));
}
