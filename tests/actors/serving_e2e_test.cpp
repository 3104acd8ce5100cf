// One site end to end on SmolLM2-135M-Instruct: a real gateway (HTTP + Cap'n Proto RPC) in front
// of local_serving (scheduler actor, worker actor, step thread, batch runner). What a client
// notices: unary and streamed answers agree and are right; concurrent requests share model
// steps; a client that disconnects mid-stream gets its KV blocks freed; deadlines, overload and
// priorities give the documented outcomes and the node keeps serving; a CAF timer keeps its
// period while the worker runs steps. Skips (exit 77) when the model is not fetched.

#define CATCH_CONFIG_RUNNER
#include "gateway_test_client.hpp"
#include "schemas/inference.capnp.h"
#include "serving_test_node.hpp"

#include <capnp/ez-rpc.h>
#include <caf/all.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <future>
#include <string>
#include <thread>
#include <vector>

using namespace bastion;
using namespace bastion::serving;
using namespace bastion::serving::testing;
using bastion::gateway::testing::http_request;
using bastion::gateway::testing::http_response;
using bastion::gateway::testing::parse_response;
using bastion::gateway::testing::sse_data;
using bastion::gateway::testing::tcp_socket;
using json = nlohmann::json;
using namespace std::chrono_literals;
namespace schema = bastion::schema;

namespace {

const char* question = "What is the capital of France?";

std::string chat_body(const std::string& content, int max_tokens, bool stream) {
  return json{{"model", "smollm2"},
              {"messages", json::array({{{"role", "user"}, {"content", content}}})},
              {"max_tokens", max_tokens},
              {"temperature", 0},
              {"stream", stream}}
      .dump();
}

std::string completion_body(const std::string& prompt, int max_tokens, bool stream) {
  return json{{"model", "smollm2"},
              {"prompt", prompt},
              {"max_tokens", max_tokens},
              {"temperature", 0},
              {"stream", stream}}
      .dump();
}

http_response post(std::uint16_t port, const std::string& path, const std::string& body,
                   std::vector<std::string> headers = {}) {
  return http_request(port, "POST", path, body, headers, 60s);
}

// The text of a streamed answer: the deltas of every event, and the last event with usage.
struct streamed {
  std::string text;
  json usage;
  std::string finish_reason;
  bool done_marker = false;
};

streamed collect_stream(const std::string& body) {
  streamed out;
  for (const auto& data : sse_data(body)) {
    if (data == "[DONE]") {
      out.done_marker = true;
      continue;
    }
    const auto j = json::parse(data);
    if (j.contains("usage") && !j["usage"].is_null()) out.usage = j["usage"];
    if (!j.contains("choices") || j["choices"].empty()) continue;
    const auto& c = j["choices"][0];
    if (c.contains("delta") && c["delta"].contains("content"))
      out.text += c["delta"]["content"].get<std::string>();
    if (c.contains("text")) out.text += c["text"].get<std::string>();
    if (c.contains("finish_reason") && c["finish_reason"].is_string())
      out.finish_reason = c["finish_reason"].get<std::string>();
  }
  return out;
}

std::string chat_text(const http_response& r) {
  return json::parse(r.body)["choices"][0]["message"]["content"].get<std::string>();
}

// Polls `pred` every 10 ms for at most `limit`.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 5000ms) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

std::string metric_line(const test_node& n, const std::string& prefix) {
  const auto text = n.registry.render_prometheus();
  const auto at = text.find(prefix);
  if (at == std::string::npos) return {};
  return text.substr(at, text.find('\n', at) - at);
}

// The value of the series `prefix` names (its whole name and labels); NaN when absent.
double metric_value(const test_node& n, const std::string& prefix) {
  const auto line = metric_line(n, prefix + " ");
  return line.empty() ? std::nan("") : std::stod(line.substr(prefix.size() + 1));
}

}  // namespace

TEST_CASE("unary and streamed answers through HTTP agree, are right and carry usage") {
  test_node node(smollm2_config(4));
  const auto unary = post(node.http(), "/v1/chat/completions", chat_body(question, 8, false));
  REQUIRE(unary.status == 200);
  const auto j = json::parse(unary.body);
  const auto text = chat_text(unary);
  INFO(text);
  CHECK(text.find("Paris") != std::string::npos);
  CHECK(j["model"] == "smollm2");
  CHECK(j["usage"]["prompt_tokens"].get<int>() > 5);
  CHECK(j["usage"]["completion_tokens"].get<int>() >= 1);
  CHECK(j["usage"]["completion_tokens"].get<int>() <= 8);

  const auto stream = post(node.http(), "/v1/chat/completions", chat_body(question, 8, true));
  REQUIRE(stream.status == 200);
  const auto s = collect_stream(stream.body);
  CHECK(s.text == text);
  REQUIRE(!s.usage.is_null());
  CHECK(s.usage["completion_tokens"] == j["usage"]["completion_tokens"]);
  CHECK(s.usage["prompt_tokens"] == j["usage"]["prompt_tokens"]);

  // The raw-prompt API and /v1/models speak for the same node.
  const auto raw = post(node.http(), "/v1/completions", completion_body("1, 2, 3, 4,", 4, false));
  REQUIRE(raw.status == 200);
  CHECK(json::parse(raw.body)["choices"][0]["text"].get<std::string>().find('5') !=
        std::string::npos);
  const auto models = http_request(node.http(), "GET", "/v1/models");
  REQUIRE(models.status == 200);
  CHECK(json::parse(models.body)["data"][0]["id"] == "smollm2");

  // Bad input found by the worker is a typed 400 naming the problem; the node keeps serving.
  const auto too_long = post(
      node.http(), "/v1/completions",
      json{{"model", "smollm2"}, {"prompt", std::string(3000 * 4, 'a') + " end"}, {"max_tokens", 4}}
          .dump());
  CHECK(too_long.status == 400);
  CHECK(too_long.body.find("context") != std::string::npos);
  // Counted under its own reason, with the gateway's refusals and in the serving outcomes.
  CHECK(metric_line(node, "bastion_http_rejected_total{reason=\"prompt_too_long\"}") ==
        "bastion_http_rejected_total{reason=\"prompt_too_long\"} 1");
  CHECK(metric_line(node,
                    "bastion_serving_requests_total{class=\"interactive\",outcome=\"prompt_"
                    "too_long\"}") ==
        "bastion_serving_requests_total{class=\"interactive\",outcome=\"prompt_too_long\"} 1");
  CHECK(post(node.http(), "/v1/chat/completions", chat_body(question, 2, false)).status == 200);

  // Four answers, unary and streamed alike, in the latency histograms of their class (the
  // refused prompt is not an answer); each first token came before its answer was complete.
  const std::string cls = "{class=\"interactive\"}";
  CHECK(metric_value(node, "bastion_serving_request_seconds_count" + cls) == 4);
  CHECK(metric_value(node, "bastion_serving_time_to_first_token_seconds_count" + cls) == 4);
  CHECK(metric_value(node, "bastion_serving_request_seconds_bucket{class=\"interactive\","
                           "le=\"+Inf\"}") == 4);
  const double ttft = metric_value(node, "bastion_serving_time_to_first_token_seconds_sum" + cls);
  const double e2e = metric_value(node, "bastion_serving_request_seconds_sum" + cls);
  CHECK(ttft > 0);
  CHECK(ttft < e2e);
  // Answers of two or more tokens have a time per output token: the first three at least.
  const double tpot = metric_value(node, "bastion_serving_time_per_output_token_seconds_count" + cls);
  CHECK(tpot >= 3);
  CHECK(tpot <= 4);
  CHECK(metric_value(node, "bastion_serving_request_seconds_count{class=\"batch\"}") == 0);
}

TEST_CASE("the Cap'n Proto RPC service answers unary and streamed calls from the worker") {
  test_node node(smollm2_config(4));
  const auto http_text =
      chat_text(post(node.http(), "/v1/chat/completions", chat_body(question, 8, false)));
  capnp::EzRpcClient client("127.0.0.1", node.rpc());
  auto cap = client.getMain<schema::Inference>();
  auto fill = [](auto req) {
    req.setModelId("smollm2");
    auto chat = req.initInputData().initChat(1);
    chat[0].setRole("user");
    chat[0].setContent(question);
    req.initParams().setMaxTokens(8);
    return req;
  };
  auto unary = fill(cap.inferenceRequest()).send().wait(client.getWaitScope());
  REQUIRE(unary.getResult().isResponse());
  auto r = unary.getResult().getResponse();
  CHECK(std::string(r.getText().cStr()) == http_text);
  CHECK(r.getModelId() == "smollm2");
  CHECK(r.getSite() == "prod");
  CHECK(r.getUsage().getCompletionTokens() >= 1);

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
  struct sink final : public schema::TokenSink::Server {
    std::string tokens, done_text;
    bool done_called = false;
    kj::Promise<void> token(TokenContext c) override {
      tokens += c.getParams().getText().cStr();
      return kj::READY_NOW;
    }
    kj::Promise<void> done(DoneContext c) override {
      done_called = true;
      auto res = c.getParams().getResult();
      if (res.isResponse()) done_text = res.getResponse().getText().cStr();
      return kj::READY_NOW;
    }
  };
#pragma GCC diagnostic pop
  auto impl = kj::heap<sink>();
  auto& s = *impl;
  schema::TokenSink::Client sink_cap = kj::mv(impl);
  auto req = fill(cap.inferenceStreamRequest());
  req.setSink(sink_cap);
  req.send().wait(client.getWaitScope());
  REQUIRE(s.done_called);
  CHECK(s.tokens == http_text);
  CHECK(s.done_text == http_text);
}

TEST_CASE("concurrent requests are batched into shared model steps") {
  test_node node(smollm2_config(4));
  std::vector<std::future<http_response>> answers;
  const char* prompts[] = {"The sky is", "Water boils at", "One plus one is", "Cats like to"};
  for (const char* p : prompts)
    answers.push_back(std::async(std::launch::async, [&, p] {
      return post(node.http(), "/v1/completions", completion_body(p, 6, false));
    }));
  int tokens = 0;
  for (auto& a : answers) {
    const auto r = a.get();
    REQUIRE(r.status == 200);
    tokens += json::parse(r.body)["usage"]["completion_tokens"].get<int>();
  }
  const auto w = node.worker();
  INFO("steps " << w.steps << ", tokens " << tokens);
  CHECK(w.max_step_sequences > 1);
  CHECK(w.steps < tokens);  // one step per token would mean no batching at all
  CHECK(metric_line(node, "bastion_worker_step_sequences_max{") != "");
}

TEST_CASE("a client that disconnects mid-stream cancels its work and frees its KV blocks") {
  test_node node(smollm2_config(4));
  const auto before = node.worker();
  REQUIRE(before.kv_blocks_used == 0);
  {
    tcp_socket s(node.http());
    const auto body = completion_body("Once upon a time", 200, true);
    s.send_all(
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body);
    std::string seen;
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (seen.find("data: ") == std::string::npos && std::chrono::steady_clock::now() < until)
      seen += s.read_for(100ms);
    REQUIRE(seen.find("data: ") != std::string::npos);
    CHECK(node.worker().kv_blocks_used > 0);
    s.reset();
  }
  CHECK(eventually([&] {
    const auto w = node.worker();
    return w.kv_blocks_used == 0 && w.running == 0;
  }));
  CHECK(metric_line(
            node, "bastion_serving_requests_total{class=\"interactive\",outcome=\"cancelled\"}") ==
        "bastion_serving_requests_total{class=\"interactive\",outcome=\"cancelled\"} 1");
  const auto generated = metric_line(node, "bastion_worker_tokens_generated_total{");
  INFO(generated);
  CHECK(std::stoi(generated.substr(generated.rfind(' ') + 1)) < 200);
  // The node still answers afterwards.
  CHECK(post(node.http(), "/v1/completions", completion_body("Hello", 2, false)).status == 200);
}

TEST_CASE("deadlines: queued past its deadline and running past it both give the deadline error") {
  test_node node(smollm2_config(1));
  auto busy = std::async(std::launch::async, [&] {
    return post(node.http(), "/v1/completions", completion_body("Once upon a time", 16, false));
  });
  REQUIRE(eventually([&] { return node.worker().running == 1; }));
  const auto queued = post(node.http(), "/v1/completions", completion_body("Hi", 4, false),
                           {"X-Bastion-Deadline-Ms: 150"});
  CHECK(queued.status == 504);
  CHECK(queued.body.find("deadline_exceeded") != std::string::npos);
  CHECK(queued.body.find("queue") != std::string::npos);  // ours, not the gateway's guard
  CHECK(busy.get().status == 200);

  const auto running =
      post(node.http(), "/v1/completions", completion_body("Once upon a time", 200, false),
           {"X-Bastion-Deadline-Ms: 400"});
  CHECK(running.status == 504);
  CHECK(running.body.find("deadline_exceeded") != std::string::npos);
  CHECK(eventually([&] { return node.worker().kv_blocks_used == 0; }));
  CHECK(metric_line(node,
                    "bastion_serving_requests_total{class=\"interactive\",outcome=\"deadline\"}") ==
        "bastion_serving_requests_total{class=\"interactive\",outcome=\"deadline\"} 2");
}

TEST_CASE("overload gives a typed error with Retry-After, and the node keeps serving") {
  test_node node(smollm2_config(1, {4, 1, 4, 4}));
  auto running = std::async(std::launch::async, [&] {
    return post(node.http(), "/v1/completions", completion_body("Once upon a time", 12, false));
  });
  REQUIRE(eventually([&] { return node.worker().running == 1; }));
  auto queued = std::async(std::launch::async, [&] {
    return post(node.http(), "/v1/completions", completion_body("The sky is", 4, false));
  });
  REQUIRE(eventually([&] { return node.serving->snapshot(5s).queued[1] == 1; }));
  const auto refused = post(node.http(), "/v1/completions", completion_body("No room", 4, false));
  CHECK(refused.status == 429);
  CHECK(refused.body.find("overloaded") != std::string::npos);
  CHECK(!refused.header("retry-after").empty());
  CHECK(running.get().status == 200);
  CHECK(queued.get().status == 200);
  CHECK(post(node.http(), "/v1/completions", completion_body("Room again", 4, false)).status ==
        200);
}

TEST_CASE("production overtakes queued batch work; the preempted stream continues seamlessly") {
  test_node node(smollm2_config(1));
  const std::string prompt = "Once upon a time, in a small village,";
  const auto reference =
      collect_stream(post(node.http(), "/v1/completions", completion_body(prompt, 24, true),
                          {"X-Bastion-Priority: batch"})
                         .body);
  REQUIRE(!reference.text.empty());

  using clock = std::chrono::steady_clock;
  tcp_socket a(node.http());
  const auto body = completion_body(prompt, 24, true);
  a.send_all(
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "X-Bastion-Priority: batch\r\nConnection: close\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body);
  std::string a_raw;
  const auto until = clock::now() + 20s;
  while (a_raw.find("data: ") == std::string::npos && clock::now() < until)
    a_raw += a.read_for(100ms);
  REQUIRE(a_raw.find("data: ") != std::string::npos);
  auto b = std::async(std::launch::async, [&] {
    auto r = post(node.http(), "/v1/completions", completion_body("The sky is", 4, false),
                  {"X-Bastion-Priority: batch"});
    return std::make_pair(r, clock::now());
  });
  REQUIRE(eventually([&] { return node.serving->snapshot(5s).queued[2] == 1; }));
  auto c = std::async(std::launch::async, [&] {
    auto r = post(node.http(), "/v1/completions", completion_body("Water boils at", 4, false),
                  {"X-Bastion-Priority: production"});
    return std::make_pair(r, clock::now());
  });
  bool eof = false;
  const auto a_until = clock::now() + 60s;
  while (!eof && !parse_response(a_raw).complete && clock::now() < a_until)
    a_raw += a.read_for(20ms, &eof);
  const auto a_done = clock::now();
  const auto [c_resp, c_done] = c.get();
  const auto [b_resp, b_done] = b.get();
  CHECK(c_resp.status == 200);
  CHECK(b_resp.status == 200);
  // One slot: production could only finish before the batch stream by preempting it.
  CHECK(c_done < a_done);
  CHECK(c_done < b_done);
  const auto a_stream = collect_stream(parse_response(a_raw).body);
  CHECK(a_stream.text == reference.text);
  CHECK(a_stream.usage["completion_tokens"] == reference.usage["completion_tokens"]);
  CHECK(a_stream.usage["prompt_tokens"] == reference.usage["prompt_tokens"]);
}

TEST_CASE("with its GPU worker unusable, requests fall back to the CPU worker of the model") {
  // Without a device the GPU worker starts unhealthy; with one whose backend lacks operations,
  // its first step fails and it hands the request back. Either way the client gets its answer.
  auto cfg = smollm2_config(2);
  auto gpu = cfg.workers[0];
  gpu.id = "gpu-0";
  gpu.kind = "gpu";
  gpu.device = 0;
  cfg.workers.insert(cfg.workers.begin(), gpu);
  test_node node(cfg);
  const auto r = post(node.http(), "/v1/completions", completion_body("1, 2, 3, 4,", 4, false));
  REQUIRE(r.status == 200);
  CHECK(json::parse(r.body)["choices"][0]["text"].get<std::string>().find('5') !=
        std::string::npos);
  const auto snap = node.serving->snapshot(5s);
  REQUIRE(snap.workers.size() == 2);
  const auto& g = snap.workers[0];
  const auto& c = snap.workers[1];
  INFO("gpu backend " << g.backend << ", steps " << g.steps);
  CHECK(g.id == "gpu-0");
  CHECK(!g.healthy);
  CHECK(g.kv_blocks_used == 0);
  CHECK(c.healthy);
  CHECK(c.steps > 0);
  CHECK(metric_line(node, "bastion_worker_healthy{worker=\"gpu-0\"}") ==
        "bastion_worker_healthy{worker=\"gpu-0\"} 0");
}

namespace {

using beat_atom = caf::atom_constant<caf::atom("beat")>;

struct beat_state {
  std::chrono::steady_clock::time_point due;
  std::vector<double> lateness_ms;
};

// A heartbeat-like actor: one timer per period, each measured against when it was due.
caf::behavior heartbeat(caf::stateful_actor<beat_state>* self, std::chrono::milliseconds period,
                        int beats, std::shared_ptr<std::promise<std::vector<double>>> out) {
  self->state.due = std::chrono::steady_clock::now() + period;
  self->delayed_send(self, period, beat_atom::value);
  return {[=](beat_atom) {
    const auto now = std::chrono::steady_clock::now();
    auto& st = self->state;
    st.lateness_ms.push_back(std::chrono::duration<double, std::milli>(now - st.due).count());
    if (static_cast<int>(st.lateness_ms.size()) == beats) {
      out->set_value(st.lateness_ms);
      self->quit();
      return;
    }
    st.due = now + period;
    self->delayed_send(self, period, beat_atom::value);
  }};
}

}  // namespace

TEST_CASE("a timer actor keeps its period while the worker runs long batched steps") {
  test_node node(smollm2_config(4));
  auto result = std::make_shared<std::promise<std::vector<double>>>();
  auto lateness = result->get_future();
  std::vector<std::future<http_response>> load;
  for (const char* p : {"The sky is", "Water boils at", "One plus one is", "Cats like to"})
    load.push_back(std::async(std::launch::async, [&, p] {
      return post(node.http(), "/v1/completions", completion_body(p, 16, false));
    }));
  REQUIRE(eventually([&] { return node.worker().running > 0; }));
  node.sys->spawn(heartbeat, 20ms, 75, result);
  auto ms = lateness.get();
  for (auto& l : load) CHECK(l.get().status == 200);
  std::sort(ms.begin(), ms.end());
  const double p99 = ms[ms.size() * 99 / 100];
  std::printf("heartbeat lateness over %zu beats of 20 ms under load: p50 %.2f ms, p99 %.2f ms\n",
              ms.size(), ms[ms.size() / 2], p99);
  CHECK(node.worker().steps > 10);
  CHECK(p99 < 50.0);
}

int main(int argc, char** argv) {
  const std::string path = bastion::test::smollm2_path();
  if (!bastion::test::file_exists(path)) {
    std::printf("SKIP: %s not found (run scripts/fetch-model)\n", path.c_str());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
