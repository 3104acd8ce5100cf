// The gateway's OpenAI-compatible HTTP API over real loopback sockets, against the fake port.

#include "gateway_test_client.hpp"
#include "gateway_test_fixture.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <thread>

using namespace bastion::gateway;
using namespace bastion::gateway::testing;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

json body_json(const http_response& r) { return json::parse(r.body); }

http_response post(gateway_fixture& f, const std::string& path, const std::string& body,
                   std::vector<std::string> headers = {}) {
  headers.push_back(f.auth());
  return http_request(f.server.http_port(), "POST", path, body, headers);
}

void check_error_shape(const http_response& r, int status, const std::string& code) {
  INFO(r.body);
  CHECK(r.status == status);
  const auto j = body_json(r);
  REQUIRE(j.contains("error"));
  CHECK(j["error"]["message"].is_string());
  CHECK(j["error"]["type"].is_string());
  CHECK(j["error"].contains("param"));
  CHECK(j["error"]["code"] == code);
}

bool is_hex32(const std::string& s) {
  if (s.size() != 32) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("health, readiness and metrics endpoints") {
  gateway_fixture f;
  const auto port = f.server.http_port();
  CHECK(http_request(port, "GET", "/healthz").status == 200);
  CHECK(http_request(port, "GET", "/readyz").status == 200);
  f.ready = false;
  CHECK(http_request(port, "GET", "/readyz").status == 503);
  f.ready = true;
  CHECK(http_request(port, "GET", "/readyz").status == 200);
  const auto m = http_request(port, "GET", "/metrics");
  CHECK(m.status == 200);
  CHECK(m.header("content-type").find("text/plain") == 0);
  CHECK(m.body.find("bastion_http_requests_total{route=\"readyz\",code=\"503\"} 1") !=
        std::string::npos);
}

TEST_CASE("unary completion returns the OpenAI shape with the request id") {
  gateway_fixture f;
  const auto r =
      post(f, "/v1/completions", R"({"model":"echo","prompt":"hello big world","max_tokens":10})");
  REQUIRE(r.status == 200);
  const auto j = body_json(r);
  CHECK(j["object"] == "text_completion");
  CHECK(j["model"] == "echo");
  CHECK(j["choices"].size() == 1);
  CHECK(j["choices"][0]["text"] == "hello big world");
  CHECK(j["choices"][0]["index"] == 0);
  CHECK(j["choices"][0]["finish_reason"] == "stop");
  CHECK(j["usage"] == json{{"prompt_tokens", 7}, {"completion_tokens", 3}, {"total_tokens", 10}});
  CHECK(is_hex32(j["id"].get<std::string>()));
  CHECK(r.header("x-request-id") == j["id"]);

  const auto seen = f.port.submitted();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].request_id == j["id"]);
  CHECK(seen[0].principal == "alice");
  CHECK(seen[0].priority == priority_class::interactive);
  CHECK(seen[0].params.max_tokens == 10);
  CHECK_FALSE(seen[0].stream);
  CHECK(seen[0].deadline_ms == 60000);
}

TEST_CASE("unary chat completion and a fallback model naming itself") {
  gateway_fixture f;
  f.port.set_script([](const inference_request& r) {
    auto s = fake_port::echo(r);
    s.served_model = "echo-cpu-fallback";
    return s;
  });
  const auto r =
      post(f, "/v1/chat/completions",
           R"({"model":"echo","messages":[{"role":"system","content":"be brief"},)"
           R"({"role":"user","content":[{"type":"text","text":"hi there"}]}],"seed":-1})");
  REQUIRE(r.status == 200);
  const auto j = body_json(r);
  CHECK(j["object"] == "chat.completion");
  CHECK(j["model"] == "echo-cpu-fallback");
  CHECK(j["choices"][0]["message"]["role"] == "assistant");
  CHECK(j["choices"][0]["message"]["content"] == "be brief hi there");
  const auto seen = f.port.submitted();
  REQUIRE(seen.size() == 1);
  const auto& msgs = std::get<std::vector<chat_message>>(seen[0].input);
  REQUIRE(msgs.size() == 2);
  CHECK(msgs[1].role == "user");
  CHECK(msgs[1].content == "hi there");
  CHECK(seen[0].params.seed == ~std::uint64_t{0});
}

TEST_CASE("request ids: the client's valid id is honoured, a bad one is refused") {
  gateway_fixture f;
  auto r = post(f, "/v1/completions", R"({"model":"echo","prompt":"a"})",
                {"X-Request-Id: retry.42:abc-DEF_9"});
  CHECK(r.status == 200);
  CHECK(r.header("x-request-id") == "retry.42:abc-DEF_9");
  CHECK(body_json(r)["id"] == "retry.42:abc-DEF_9");

  r = post(f, "/v1/completions", R"({"model":"echo","prompt":"a"})", {"X-Request-Id: bad id/../x"});
  check_error_shape(r, 400, "invalid_argument");
  r = post(f, "/v1/completions", R"({"model":"echo","prompt":"a"})",
           {"X-Request-Id: " + std::string(129, 'a')});
  check_error_shape(r, 400, "invalid_argument");
  CHECK(f.port.submitted().size() == 1);
}

TEST_CASE("API keys and priority classes") {
  gateway_fixture f;
  const auto port = f.server.http_port();
  const std::string body = R"({"model":"echo","prompt":"a"})";
  check_error_shape(http_request(port, "POST", "/v1/completions", body), 401, "invalid_api_key");
  check_error_shape(
      http_request(port, "POST", "/v1/completions", body, {"Authorization: Bearer sk-wrong"}), 401,
      "invalid_api_key");
  check_error_shape(
      http_request(port, "POST", "/v1/completions", body, {"Authorization: Basic c2stYWxpY2U="}),
      401, "invalid_api_key");
  check_error_shape(http_request(port, "GET", "/v1/models"), 401, "invalid_api_key");
  check_error_shape(post(f, "/v1/completions", body, {"X-Bastion-Priority: production"}), 403,
                    "permission_denied");
  check_error_shape(post(f, "/v1/completions", body, {"X-Bastion-Priority: urgent"}), 400,
                    "invalid_argument");
  CHECK(post(f, "/v1/completions", body, {"X-Bastion-Priority: batch"}).status == 200);
  CHECK(http_request(
            port, "POST", "/v1/completions", body,
            {"Authorization: bearer  " + std::string(prod_key), "X-Bastion-Priority: production"})
            .status == 200);
  // The production key may not fall back to the default class it was not given.
  check_error_shape(http_request(port, "POST", "/v1/completions", body, {f.auth(prod_key)}), 403,
                    "permission_denied");
  const auto seen = f.port.submitted();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].priority == priority_class::batch);
  CHECK(seen[1].principal == "prod-svc");
  CHECK(seen[1].priority == priority_class::production);
  const auto m = http_request(port, "GET", "/metrics").body;
  CHECK(m.find("bastion_http_rejected_total{reason=\"unauthenticated\"} 4") != std::string::npos);
  CHECK(m.find("bastion_http_rejected_total{reason=\"permission_denied\"} 2") != std::string::npos);
}

TEST_CASE("invalid requests get 400/404 in the OpenAI error shape and never reach the port") {
  gateway_fixture f;
  struct bad {
    const char* path;
    const char* body;
    int status;
    const char* param;
  };
  const bad cases[] = {
      {"/v1/completions", R"({"model":"echo","prompt":"a",)", 400, nullptr},
      {"/v1/completions", R"([1,2,3])", 400, nullptr},
      {"/v1/completions", R"({"prompt":"a"})", 400, "model"},
      {"/v1/completions", R"({"model":"nope","prompt":"a"})", 404, "model"},
      {"/v1/completions", R"({"model":"echo"})", 400, "prompt"},
      {"/v1/completions", R"({"model":"echo","prompt":""})", 400, "prompt"},
      {"/v1/completions", R"({"model":"echo","prompt":["a","b"]})", 400, "prompt"},
      {"/v1/completions", R"({"model":"echo","prompt":"a","max_tokens":0})", 400, "max_tokens"},
      {"/v1/completions", R"({"model":"tiny","prompt":"a","max_tokens":9})", 400, "max_tokens"},
      {"/v1/completions", R"({"model":"echo","prompt":"a","max_tokens":"5"})", 400, "max_tokens"},
      {"/v1/completions", R"({"model":"echo","prompt":"a","temperature":2.5})", 400, "temperature"},
      {"/v1/completions", R"({"model":"echo","prompt":"a","top_p":0})", 400, "top_p"},
      {"/v1/completions", R"({"model":"echo","prompt":"a","top_k":-1})", 400, "top_k"},
      {"/v1/completions", R"({"model":"echo","prompt":"a","n":2})", 400, "n"},
      {"/v1/completions", R"({"model":"echo","prompt":"a","stop":["1","2","3","4","5"]})", 400,
       "stop"},
      {"/v1/completions", R"({"model":"echo","prompt":"a","stream":"yes"})", 400, "stream"},
      {"/v1/chat/completions", R"({"model":"echo","messages":[]})", 400, "messages"},
      {"/v1/chat/completions", R"({"model":"echo","messages":[{"role":"tool","content":"x"}]})",
       400, "messages[0].role"},
      {"/v1/chat/completions", R"({"model":"echo","messages":[{"role":"user"}]})", 400,
       "messages[0].content"},
      {"/v1/chat/completions",
       R"({"model":"echo","messages":[{"role":"user","content":"x"}],"tools":[{}]})", 400, "tools"},
  };
  for (const auto& c : cases) {
    INFO(c.body);
    const auto r = post(f, c.path, c.body);
    CHECK(r.status == c.status);
    const auto j = body_json(r);
    CHECK(j["error"]["message"].is_string());
    if (c.param != nullptr) {
      CHECK(j["error"]["param"] == c.param);
    } else {
      CHECK(j["error"]["param"].is_null());
    }
    CHECK_FALSE(r.header("x-request-id").empty());
  }
  const auto malformed = body_json(post(f, "/v1/completions", R"({"model":"echo","prompt":"a",)"));
  CHECK(malformed["error"]["message"].get<std::string>().find("at byte") != std::string::npos);
  CHECK(f.port.submitted().empty());
  // Unknown fields are ignored, as OpenAI does.
  CHECK(post(f, "/v1/completions",
             R"({"model":"echo","prompt":"a","user":"u1","x_future_field":{"a":1}})")
            .status == 200);
}

TEST_CASE("unknown paths are 404, wrong methods 405") {
  gateway_fixture f;
  const auto port = f.server.http_port();
  check_error_shape(http_request(port, "GET", "/v1/engines", "", {f.auth()}), 404, "unknown_url");
  const auto r = http_request(port, "GET", "/v1/completions", "", {f.auth()});
  check_error_shape(r, 405, "method_not_allowed");
  CHECK(r.header("allow") == "POST");
  CHECK(http_request(port, "POST", "/healthz", "{}").status == 405);
}

TEST_CASE("models list and retrieve") {
  gateway_fixture f;
  const auto port = f.server.http_port();
  auto r = http_request(port, "GET", "/v1/models", "", {f.auth()});
  REQUIRE(r.status == 200);
  auto j = body_json(r);
  CHECK(j["object"] == "list");
  REQUIRE(j["data"].size() == 2);
  CHECK(
      j["data"][0] ==
      json{{"id", "echo"}, {"object", "model"}, {"created", 1700000000}, {"owned_by", "bastion"}});
  r = http_request(port, "GET", "/v1/models/tiny", "", {f.auth()});
  REQUIRE(r.status == 200);
  CHECK(body_json(r)["id"] == "tiny");
  check_error_shape(http_request(port, "GET", "/v1/models/none", "", {f.auth()}), 404,
                    "model_not_found");
}

TEST_CASE("the port's errors map to HTTP statuses") {
  gateway_fixture f;
  std::optional<inference_error> next;
  f.port.set_script([&](const inference_request&) {
    fake_script s;
    s.error = next;
    return s;
  });
  const std::string body = R"({"model":"echo","prompt":"a"})";

  next = inference_error{error_code::overloaded, "queue full", "", 2500, ""};
  auto r = post(f, "/v1/completions", body);
  check_error_shape(r, 429, "overloaded");
  CHECK(r.header("retry-after") == "3");

  next =
      inference_error{error_code::not_primary, "not the primary", "", 0, "dr-local.example:8080"};
  r = post(f, "/v1/completions", body);
  check_error_shape(r, 307, "not_primary");  // a standby redirects to the primary
  CHECK(r.header("location") == "http://dr-local.example:8080/v1/completions");
  CHECK(r.header("x-bastion-leader") == "dr-local.example:8080");
  CHECK(body_json(r)["error"]["message"].get<std::string>().find("dr-local.example:8080") !=
        std::string::npos);

  next = inference_error{error_code::deadline_exceeded, "too slow", "", 0, ""};
  check_error_shape(post(f, "/v1/completions", body), 504, "deadline_exceeded");
  next = inference_error{error_code::internal, "boom", "", 0, ""};
  check_error_shape(post(f, "/v1/completions", body), 500, "internal");
  next = inference_error{error_code::not_primary, "no leader known", "", 0, ""};
  check_error_shape(post(f, "/v1/completions", body), 503, "not_primary");  // nowhere to send
  next = inference_error{error_code::outcome_unknown, "lost leadership", "", 0, ""};
  check_error_shape(post(f, "/v1/completions", body), 503, "outcome_unknown");

  // Streaming requests refused before their first token get the same plain HTTP error.
  next = inference_error{error_code::overloaded, "queue full", "", 100, ""};
  r = post(f, "/v1/completions", R"({"model":"echo","prompt":"a","stream":true})");
  check_error_shape(r, 429, "overloaded");
  CHECK(r.header("retry-after") == "1");
}

// OpenAI answers a prompt longer than the context with 400 and
// {"type": "invalid_request_error", "param": "messages" | "prompt",
//  "code": "context_length_exceeded"}; its SDKs and many applications look for that code.
TEST_CASE("a prompt too long for the context is OpenAI's context_length_exceeded, counted") {
  gateway_fixture f;
  f.port.set_script([&](const inference_request&) {
    fake_script s;
    s.error = inference_error{
        error_code::invalid_argument, "the prompt is 9000 tokens", "", 0, "", "input"};
    s.error->reason = "prompt_too_long";
    return s;
  });
  auto check_too_long = [](const http_response& r, const char* param) {
    check_error_shape(r, 400, "context_length_exceeded");
    const auto j = body_json(r);
    CHECK(j["error"]["type"] == "invalid_request_error");
    CHECK(j["error"]["param"] == param);
    CHECK(j["error"]["message"] == "the prompt is 9000 tokens");
    CHECK(j.size() == 1);
    CHECK(j["error"].size() == 4);
  };
  check_too_long(post(f, "/v1/completions", R"({"model":"echo","prompt":"a"})"), "prompt");
  check_too_long(post(f, "/v1/chat/completions",
                      R"({"model":"echo","messages":[{"role":"user","content":"a"}]})"),
                 "messages");
  check_too_long(
      post(f, "/v1/chat/completions",
           R"({"model":"echo","messages":[{"role":"user","content":"a"}],"stream":true})"),
      "messages");
  // More token ids than the model's context (the gateway's own check, before the port).
  std::string ids = "[";
  for (int i = 0; i < 9; ++i) ids += (i ? ",1" : "1");
  auto r = post(f, "/v1/completions", R"({"model":"tiny","prompt":)" + ids + "]}");
  check_error_shape(r, 400, "context_length_exceeded");
  CHECK(body_json(r)["error"]["param"] == "prompt");
  // Another invalid input from the port is neither that code nor counted as too long.
  f.port.set_script([&](const inference_request&) {
    fake_script s;
    s.error = inference_error{error_code::invalid_argument, "bad token", "", 0, "", "input"};
    return s;
  });
  check_error_shape(post(f, "/v1/completions", R"({"model":"echo","prompt":"a"})"), 400,
                    "invalid_argument");
  const auto m = http_request(f.server.http_port(), "GET", "/metrics").body;
  CHECK(m.find("bastion_http_rejected_total{reason=\"prompt_too_long\"} 4") != std::string::npos);
}

// After its first token a stream can only end with an error event; a too-long refusal that
// came that late still carries OpenAI's code.
TEST_CASE("a stream refused as too long after its first token ends with context_length_exceeded") {
  gateway_fixture f;
  f.port.set_script([&](const inference_request&) {
    fake_script s;
    s.tokens = {"partial"};
    s.error = inference_error{error_code::invalid_argument, "too long", "", 0, "", "input"};
    s.error->reason = "prompt_too_long";
    return s;
  });
  const auto r = post(f, "/v1/completions", R"({"model":"echo","prompt":"a","stream":true})");
  REQUIRE(r.status == 200);
  const auto events = sse_data(r.body);
  REQUIRE(events.size() == 2);
  const auto e = json::parse(events[1]);
  CHECK(e["error"]["code"] == "context_length_exceeded");
  CHECK(e["error"]["param"] == "prompt");
  CHECK(e["error"]["type"] == "invalid_request_error");
}

TEST_CASE("streaming completions: SSE chunks, final chunk with finish reason and usage, [DONE]") {
  gateway_fixture f;
  f.port.set_script([](const inference_request& r) {
    auto s = fake_port::echo(r);
    s.token_delay = 5ms;
    return s;
  });
  const auto r =
      post(f, "/v1/completions", R"({"model":"echo","prompt":"one two three","stream":true})",
           {"X-Request-Id: stream-1"});
  REQUIRE(r.status == 200);
  CHECK(r.header("content-type").find("text/event-stream") == 0);
  CHECK(r.header("x-request-id") == "stream-1");
  const auto events = sse_data(r.body);
  REQUIRE(events.size() == 5);
  std::string text;
  for (std::size_t i = 0; i < 3; ++i) {
    const auto c = json::parse(events[i]);
    CHECK(c["id"] == "stream-1");
    CHECK(c["object"] == "text_completion");
    CHECK(c["choices"][0]["finish_reason"].is_null());
    text += c["choices"][0]["text"].get<std::string>();
  }
  CHECK(text == "one two three");
  const auto last = json::parse(events[3]);
  CHECK(last["choices"][0]["finish_reason"] == "stop");
  CHECK(last["usage"]["completion_tokens"] == 3);
  CHECK(events[4] == "[DONE]");
  CHECK(f.port.submitted().at(0).stream);
}

TEST_CASE("streaming chat: role first, include_usage gives OpenAI's separate usage chunk") {
  gateway_fixture f;
  const auto r =
      post(f, "/v1/chat/completions",
           R"({"model":"echo","messages":[{"role":"user","content":"x y"}],"stream":true,)"
           R"("stream_options":{"include_usage":true}})");
  REQUIRE(r.status == 200);
  const auto events = sse_data(r.body);
  REQUIRE(events.size() == 5);
  const auto first = json::parse(events[0]);
  CHECK(first["object"] == "chat.completion.chunk");
  CHECK(first["choices"][0]["delta"]["role"] == "assistant");
  CHECK(first["choices"][0]["delta"]["content"] == "x");
  CHECK_FALSE(json::parse(events[1])["choices"][0]["delta"].contains("role"));
  const auto finish = json::parse(events[2]);
  CHECK(finish["choices"][0]["finish_reason"] == "stop");
  CHECK(finish["usage"].is_null());
  const auto usage = json::parse(events[3]);
  CHECK(usage["choices"].empty());
  CHECK(usage["usage"]["total_tokens"] == 9);
  CHECK(events[4] == "[DONE]");
}

TEST_CASE("a stream that fails after its first token ends with an error event and no [DONE]") {
  gateway_fixture f;
  f.port.set_script([](const inference_request&) {
    fake_script s;
    s.tokens = {"partial"};
    s.error = inference_error{error_code::outcome_unknown, "leadership lost", "", 0, ""};
    return s;
  });
  const auto r = post(f, "/v1/completions", R"({"model":"echo","prompt":"a","stream":true})");
  REQUIRE(r.status == 200);
  const auto events = sse_data(r.body);
  REQUIRE(events.size() == 2);
  CHECK(json::parse(events[0])["choices"][0]["text"] == "partial");
  CHECK(json::parse(events[1])["error"]["code"] == "outcome_unknown");
}

TEST_CASE("callbacks invoked inline inside submit() on the loop thread work") {
  gateway_fixture f;
  f.port.set_script([](const inference_request& r) {
    auto s = fake_port::echo(r);
    s.inline_answer = true;
    return s;
  });
  CHECK(body_json(post(f, "/v1/completions",
                       R"({"model":"echo","prompt":"in line"})"))["choices"][0]["text"] ==
        "in line");
  const auto r = post(f, "/v1/completions", R"({"model":"echo","prompt":"in line","stream":true})");
  CHECK(sse_data(r.body).size() == 4);
}

TEST_CASE("the gateway's own deadline answers 504 and cancels a port that never finishes") {
  gateway_fixture f;
  f.port.set_script([](const inference_request&) {
    fake_script s;
    s.never_finish = true;
    return s;
  });
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = post(f, "/v1/completions", R"({"model":"echo","prompt":"a"})",
                      {"X-Bastion-Deadline-Ms: 100", "X-Request-Id: slow-1"});
  const auto took = std::chrono::steady_clock::now() - t0;
  check_error_shape(r, 504, "deadline_exceeded");
  CHECK(took >= 300ms);  // deadline 100 ms + grace 200 ms
  CHECK(took < 3s);
  CHECK(f.port.submitted().at(0).deadline_ms == 100);
  CHECK(f.port.wait_cancelled("slow-1", 2s));
  check_error_shape(
      post(f, "/v1/completions", R"({"model":"echo","prompt":"a"})", {"X-Bastion-Deadline-Ms: 0"}),
      400, "invalid_argument");
}

TEST_CASE("keep-alive: two requests on one connection") {
  gateway_fixture f;
  tcp_socket s(f.server.http_port());
  const std::string body = R"({"model":"echo","prompt":"k"})";
  const std::string req =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\n" + f.auth() +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  REQUIRE(s.send_all(req + req));
  std::string raw;
  for (int i = 0; i < 50 && raw.find("HTTP/1.1 200", 10) == std::string::npos; ++i)
    raw += s.read_for(100ms);
  CHECK(raw.find("HTTP/1.1 200") == 0);
  CHECK(raw.find("HTTP/1.1 200", 10) != std::string::npos);
}
