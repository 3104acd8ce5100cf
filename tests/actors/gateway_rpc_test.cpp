// The Cap'n Proto RPC service over loopback with a capnp client: unary, streaming, typed errors,
// and malformed or oversized messages from an untrusted client.

#include "gateway_test_client.hpp"
#include "gateway_test_fixture.hpp"
#include "schemas/inference.capnp.h"

#include <capnp/ez-rpc.h>
#include <capnp/message.h>
#include <capnp/rpc.capnp.h>
#include <capnp/serialize.h>
#include <kj/async-io.h>
#include <kj/timer.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace bastion::gateway;
using namespace bastion::gateway::testing;
using namespace std::chrono_literals;
namespace schema = bastion::schema;

namespace {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
// Collects a stream; done() fulfils a promise with the final result's shape.
class collecting_sink final : public schema::TokenSink::Server {
 public:
  std::vector<std::string> tokens;
  std::string done_text;
  std::string done_error;
  bool done_called = false;

 protected:
  kj::Promise<void> token(TokenContext context) override {
    tokens.push_back(context.getParams().getText());
    return kj::READY_NOW;
  }
  kj::Promise<void> done(DoneContext context) override {
    done_called = true;
    auto r = context.getParams().getResult();
    if (r.isResponse()) {
      done_text = r.getResponse().getText();
    } else {
      done_error = kj::str(r.getError().getCode()).cStr();
    }
    return kj::READY_NOW;
  }
};
#pragma GCC diagnostic pop

void fill(schema::Params::Builder p, const char* key, const char* request_id = nullptr) {
  p.setApiKey(key);
  p.setMaxTokens(10);
  if (request_id != nullptr) p.setRequestId(request_id);
}

bool has_metric(const gateway_fixture& f, const std::string& line) {
  return f.registry.render_prometheus().find(line) != std::string::npos;
}

// The gateway updates its connection gauge on its own thread as it closes a connection, a
// moment after the client sees the close.
bool metric_within(const gateway_fixture& f, const std::string& line,
                   std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!has_metric(f, line)) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::string flat(capnp::MessageBuilder& msg) {
  auto words = capnp::messageToFlatArray(msg);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// The raw RPC messages a client sends: Bootstrap (question 0), then Inference.inference on the
// bootstrap's promised answer (question 1).
std::string bootstrap_message() {
  capnp::MallocMessageBuilder msg;
  msg.initRoot<capnp::rpc::Message>().initBootstrap().setQuestionId(0);
  return flat(msg);
}

std::string inference_call_message(const char* request_id) {
  capnp::MallocMessageBuilder msg;
  auto call = msg.initRoot<capnp::rpc::Message>().initCall();
  call.setQuestionId(1);
  call.initTarget().initPromisedAnswer().setQuestionId(0);
  call.setInterfaceId(capnp::typeId<schema::Inference>());
  call.setMethodId(0);
  auto params = call.initParams().getContent().initAs<schema::Inference::InferenceParams>();
  params.setModelId("echo");
  params.initInputData().setPrompt("x");
  fill(params.initParams(), alice_key, request_id);
  return flat(msg);
}

gateway_settings idle_settings(std::uint32_t idle_timeout_ms) {
  auto s = test_settings();
  s.idle_timeout_ms = idle_timeout_ms;
  return s;
}

std::chrono::milliseconds since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0);
}

}  // namespace

TEST_CASE("RPC unary inference returns a Response with the request id") {
  gateway_fixture f;
  capnp::EzRpcClient client("127.0.0.1", f.server.rpc_port());
  auto cap = client.getMain<schema::Inference>();
  auto req = cap.inferenceRequest();
  req.setModelId("echo");
  req.initInputData().setPrompt("hello rpc world");
  fill(req.initParams(), alice_key, "rpc-1");
  auto result_response = req.send().wait(client.getWaitScope());  // owns what result reads
  auto result = result_response.getResult();
  REQUIRE(result.isResponse());
  auto r = result.getResponse();
  CHECK(std::string(r.getRequestId().cStr()) == "rpc-1");
  CHECK(std::string(r.getText().cStr()) == "hello rpc world");
  CHECK(r.getModelId() == "echo");
  CHECK(r.getFinishReason() == schema::FinishReason::STOP);
  CHECK(r.getUsage().getCompletionTokens() == 3);
  CHECK(r.getSite() == "prod");
  CHECK(r.getEpoch() == 3);
  const auto seen = f.port.submitted();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].principal == "alice");
  CHECK(seen[0].params.max_tokens == 10);
}

TEST_CASE("RPC errors come back as typed Error values") {
  gateway_fixture f;
  capnp::EzRpcClient client("127.0.0.1", f.server.rpc_port());
  auto cap = client.getMain<schema::Inference>();
  auto call = [&](auto&& setup) {
    auto req = cap.inferenceRequest();
    req.setModelId("echo");
    req.initInputData().setPrompt("x");
    fill(req.initParams(), alice_key);
    setup(req);
    auto response = req.send().wait(client.getWaitScope());
    auto result = response.getResult();
    REQUIRE(result.isError());
    CHECK(result.getError().getRequestId().size() > 0);
    CHECK(result.getError().getReason() == schema::ErrorReason::UNSPECIFIED);
    return result.getError().getCode();
  };
  using EC = schema::ErrorCode;
  CHECK(call([](auto& r) { r.getParams().setApiKey("wrong"); }) == EC::UNAUTHENTICATED);
  CHECK(call([](auto& r) { r.getParams().setPriority(schema::Priority::PRODUCTION); }) ==
        EC::PERMISSION_DENIED);
  CHECK(call([](auto& r) { r.setModelId("nope"); }) == EC::UNKNOWN_MODEL);
  CHECK(call([](auto& r) { r.getInputData().setPrompt(""); }) == EC::INVALID_ARGUMENT);
  CHECK(call([](auto& r) { r.getInputData().initChat(0); }) == EC::INVALID_ARGUMENT);
  CHECK(call([](auto& r) { r.getParams().setMaxTokens(0); }) == EC::INVALID_ARGUMENT);
  CHECK(call([](auto& r) { r.getParams().setTemperature(7.0F); }) == EC::INVALID_ARGUMENT);
  CHECK(call([](auto& r) { r.getParams().setTopP(0.0F); }) == EC::INVALID_ARGUMENT);
  CHECK(call([](auto& r) { r.getParams().setRequestId("bad id"); }) == EC::INVALID_ARGUMENT);
  CHECK(f.port.submitted().empty());
  f.port.set_script([](const inference_request&) {
    fake_script s;
    s.error = inference_error{error_code::not_primary, "go away", "", 0, "dr-local:7000"};
    return s;
  });
  auto req = cap.inferenceRequest();
  req.setModelId("echo");
  req.initInputData().setPrompt("x");
  fill(req.initParams(), alice_key);
  auto result_response = req.send().wait(client.getWaitScope());  // owns what result reads
  auto result = result_response.getResult();
  REQUIRE(result.isError());
  CHECK(result.getError().getCode() == EC::NOT_PRIMARY);
  CHECK(result.getError().getLeaderAddress() == "dr-local:7000");

  // A prompt too long for the context: an invalid argument, counted under its own reason.
  f.port.set_script([](const inference_request&) {
    fake_script s;
    s.error = inference_error{error_code::invalid_argument, "too long", "", 0, "", "input"};
    s.error->reason = "prompt_too_long";
    return s;
  });
  auto long_req = cap.inferenceRequest();
  long_req.setModelId("echo");
  long_req.initInputData().setPrompt("x");
  fill(long_req.initParams(), alice_key);
  auto long_response = long_req.send().wait(client.getWaitScope());
  REQUIRE(long_response.getResult().isError());
  CHECK(long_response.getResult().getError().getCode() == EC::INVALID_ARGUMENT);
  CHECK(long_response.getResult().getError().getReason() == schema::ErrorReason::PROMPT_TOO_LONG);
  CHECK(long_response.getResult().getError().getMessage() == "inputData: too long");
  // More token ids than the model's context: the gateway's own refusal, the same typed reason.
  auto tokens_req = cap.inferenceRequest();
  tokens_req.setModelId("tiny");  // a context of 8
  tokens_req.initInputData().setTokens({1, 2, 3, 4, 5, 6, 7, 8, 9});
  fill(tokens_req.initParams(), alice_key);
  tokens_req.getParams().setMaxTokens(1);
  auto tokens_response = tokens_req.send().wait(client.getWaitScope());
  REQUIRE(tokens_response.getResult().isError());
  CHECK(tokens_response.getResult().getError().getCode() == EC::INVALID_ARGUMENT);
  CHECK(tokens_response.getResult().getError().getReason() == schema::ErrorReason::PROMPT_TOO_LONG);
  CHECK(f.registry.render_prometheus().find(
            "bastion_rpc_rejected_total{reason=\"prompt_too_long\"} 2") != std::string::npos);
  CHECK(f.port.submitted().size() == 2);  // the gateway refused the token ids itself
}

TEST_CASE("RPC streaming calls TokenSink.token per token, then done(result)") {
  gateway_fixture f;
  capnp::EzRpcClient client("127.0.0.1", f.server.rpc_port());
  auto cap = client.getMain<schema::Inference>();
  auto sink_impl = kj::heap<collecting_sink>();
  auto& sink = *sink_impl;
  schema::TokenSink::Client sink_cap = kj::mv(sink_impl);
  auto req = cap.inferenceStreamRequest();
  req.setModelId("echo");
  auto chat = req.initInputData().initChat(1);
  chat[0].setRole("user");
  chat[0].setContent("a b c d");
  fill(req.initParams(), alice_key, "rpc-stream");
  req.setSink(sink_cap);
  auto response = req.send().wait(client.getWaitScope());
  CHECK(response.getRequestId() == "rpc-stream");
  CHECK(sink.tokens == std::vector<std::string>{"a", " b", " c", " d"});
  CHECK(sink.done_called);
  CHECK(sink.done_text == "a b c d");
  CHECK(f.port.submitted().at(0).stream);

  // A refused stream says why through done() as well.
  auto refused_impl = kj::heap<collecting_sink>();
  auto& refused = *refused_impl;
  schema::TokenSink::Client refused_cap = kj::mv(refused_impl);
  auto bad = cap.inferenceStreamRequest();
  bad.setModelId("echo");
  bad.initInputData().setPrompt("x");
  fill(bad.initParams(), "wrong-key");
  bad.setSink(refused_cap);
  bad.send().wait(client.getWaitScope());
  CHECK(refused.done_error == "unauthenticated");
  CHECK(refused.tokens.empty());
}

TEST_CASE("dropping an RPC call cancels the request at the port") {
  gateway_fixture f;
  f.port.set_script([](const inference_request&) {
    fake_script s;
    s.never_finish = true;
    return s;
  });
  {
    capnp::EzRpcClient client("127.0.0.1", f.server.rpc_port());
    auto cap = client.getMain<schema::Inference>();
    auto req = cap.inferenceRequest();
    req.setModelId("echo");
    req.initInputData().setPrompt("x");
    fill(req.initParams(), alice_key, "rpc-drop");
    auto pending = req.send();
    // Let the call reach the server, then drop it.
    kj::Timer& timer = client.getIoProvider().getTimer();
    timer.afterDelay(200 * kj::MILLISECONDS).wait(client.getWaitScope());
  }
  CHECK(f.port.wait_cancelled("rpc-drop", 3s));
}

TEST_CASE("malformed and oversized RPC messages drop that connection only") {
  auto settings = test_settings();
  settings.rpc_traversal_words_max = 4096;  // 32 KiB
  gateway_fixture f(settings);
  {
    tcp_socket s(f.server.rpc_port());
    std::string garbage(4096, '\0');
    for (std::size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>(i * 131 + 7);
    s.send_all(garbage);
    CHECK(s.wait_closed(3s));
  }
  {
    // A valid frame header announcing a 1 GiB segment.
    tcp_socket s(f.server.rpc_port());
    const std::uint32_t header[2] = {0, 1U << 27};
    s.send_all(std::string(reinterpret_cast<const char*>(header), sizeof(header)));
    CHECK(s.wait_closed(3s));
  }
  {
    // A well-formed call over the traversal limit.
    capnp::EzRpcClient client("127.0.0.1", f.server.rpc_port());
    auto cap = client.getMain<schema::Inference>();
    auto req = cap.inferenceRequest();
    req.setModelId("echo");
    req.initInputData().setPrompt(std::string(100 * 1024, 'p'));
    fill(req.initParams(), alice_key);
    CHECK_THROWS(req.send().wait(client.getWaitScope()));
  }
  // The service is still there for well-behaved clients.
  capnp::EzRpcClient client("127.0.0.1", f.server.rpc_port());
  auto cap = client.getMain<schema::Inference>();
  auto req = cap.inferenceRequest();
  req.setModelId("echo");
  req.initInputData().setPrompt("still here");
  fill(req.initParams(), alice_key);
  CHECK(req.send().wait(client.getWaitScope()).getResult().getResponse().getText() == "still here");
  CHECK(f.port.submitted().size() == 1);
}

TEST_CASE("HTTP and RPC are served together by one gateway") {
  gateway_fixture f;
  capnp::EzRpcClient client("127.0.0.1", f.server.rpc_port());
  auto cap = client.getMain<schema::Inference>();
  auto req = cap.inferenceRequest();
  req.setModelId("echo");
  req.initInputData().setTokens({5, 6});
  fill(req.initParams(), alice_key);
  CHECK(req.send().wait(client.getWaitScope()).getResult().getResponse().getText() == "5 6");
  const auto r = http_request(f.server.http_port(), "POST", "/v1/completions",
                              R"({"model":"echo","prompt":[7,8]})", {f.auth()});
  CHECK(r.status == 200);
  const auto m = http_request(f.server.http_port(), "GET", "/metrics").body;
  CHECK(m.find("bastion_rpc_requests_total{method=\"inference\",code=\"ok\"} 1") !=
        std::string::npos);
  CHECK(m.find("bastion_http_requests_total{route=\"completions\",code=\"200\"} 1") !=
        std::string::npos);
}

TEST_CASE(
    "an RPC connection that sends nothing is closed after the idle timeout, freeing its slot") {
  auto settings = idle_settings(400);
  settings.connections_max = 1;
  gateway_fixture f(settings);
  {
    tcp_socket silent(f.server.rpc_port());
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(silent.wait_closed(200ms));  // not before its time
    CHECK(silent.wait_closed(3s));
    CHECK(since(t0) >= 350ms);  // the timer's granularity, not a shorter rule
    CHECK(since(t0) < 2s);
    CHECK(has_metric(f, "bastion_rpc_rejected_total{reason=\"idle_timeout\"} 1"));
    CHECK(metric_within(f, "bastion_gateway_rpc_connections 0", 1s));
  }
  // The only slot is free again: a well-behaved client is served.
  capnp::EzRpcClient client("127.0.0.1", f.server.rpc_port());
  auto req = client.getMain<schema::Inference>().inferenceRequest();
  req.setModelId("echo");
  req.initInputData().setPrompt("served after");
  fill(req.initParams(), alice_key);
  CHECK(req.send().wait(client.getWaitScope()).getResult().getResponse().getText() ==
        "served after");
}

TEST_CASE("an RPC connection stalled in the middle of a message is closed, call in flight or not") {
  gateway_fixture f(idle_settings(400));
  f.port.set_script([](const inference_request&) {
    fake_script s;
    s.never_finish = true;
    return s;
  });
  {
    // Half a Bootstrap, then nothing: a half-open or stalled sender.
    tcp_socket half(f.server.rpc_port());
    const auto bootstrap = bootstrap_message();
    half.send_all(bootstrap.substr(0, bootstrap.size() / 2));
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(half.wait_closed(3s));
    CHECK(since(t0) >= 350ms);
    CHECK(has_metric(f, "bastion_rpc_rejected_total{reason=\"message_timeout\"} 1"));
  }
  {
    // A whole call that runs (the port never finishes): the client waits for us, so its silence
    // keeps the connection; then it starts another message and stalls in the middle of it.
    tcp_socket waiting(f.server.rpc_port());
    waiting.send_all(bootstrap_message() + inference_call_message("rpc-stalled"));
    CHECK_FALSE(waiting.wait_closed(1200ms));  // three idle timeouts with a call in flight
    REQUIRE(f.port.submitted().size() == 1);
    const auto next = bootstrap_message();
    waiting.send_all(next.substr(0, 4));  // not even its first word
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(waiting.wait_closed(3s));
    CHECK(since(t0) >= 350ms);
    CHECK(has_metric(f, "bastion_rpc_rejected_total{reason=\"message_timeout\"} 2"));
    // Closing the connection cancelled its call at the port.
    CHECK(f.port.wait_cancelled("rpc-stalled", 2s));
  }
  CHECK_FALSE(has_metric(f, "reason=\"idle_timeout\""));
  CHECK(metric_within(f, "bastion_gateway_rpc_connections 0", 1s));
}

TEST_CASE("RPC calls longer than the idle timeout are not cut, and the clock restarts after them") {
  gateway_fixture f(idle_settings(300));
  f.port.set_script([](const inference_request& r) {
    auto s = fake_port::echo(r);
    s.first_delay = 1000ms;  // over three idle timeouts with no byte either way
    s.token_delay = 100ms;
    return s;
  });
  capnp::EzRpcClient client("127.0.0.1", f.server.rpc_port());
  auto cap = client.getMain<schema::Inference>();

  auto sink_impl = kj::heap<collecting_sink>();
  auto& sink = *sink_impl;
  schema::TokenSink::Client sink_cap = kj::mv(sink_impl);
  auto stream = cap.inferenceStreamRequest();
  stream.setModelId("echo");
  stream.initInputData().setPrompt("a long slow stream");
  fill(stream.initParams(), alice_key, "rpc-long-stream");
  stream.setSink(sink_cap);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(stream.send().wait(client.getWaitScope()).getRequestId() == "rpc-long-stream");
  CHECK(since(t0) >= 1300ms);
  CHECK(sink.done_text == "a long slow stream");
  CHECK(sink.tokens.size() == 4);

  auto unary = cap.inferenceRequest();
  unary.setModelId("echo");
  unary.initInputData().setPrompt("slow unary");
  fill(unary.initParams(), alice_key);
  CHECK(unary.send().wait(client.getWaitScope()).getResult().getResponse().getText() ==
        "slow unary");
  CHECK_FALSE(has_metric(f, "reason=\"idle_timeout\""));
  CHECK_FALSE(has_metric(f, "reason=\"message_timeout\""));

  // The call's end restarts the clock: a client that then goes quiet is closed a timeout later.
  client.getIoProvider().getTimer().afterDelay(1 * kj::SECONDS).wait(client.getWaitScope());
  CHECK(has_metric(f, "bastion_rpc_rejected_total{reason=\"idle_timeout\"} 1"));
  CHECK(metric_within(f, "bastion_gateway_rpc_connections 0", 1s));
}
