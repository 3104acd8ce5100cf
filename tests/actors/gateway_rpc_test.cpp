// The Cap'n Proto RPC service over loopback with a capnp client: unary, streaming, typed errors,
// and malformed or oversized messages from an untrusted client.

#include "gateway_test_client.hpp"
#include "gateway_test_fixture.hpp"
#include "schemas/inference.capnp.h"

#include <capnp/ez-rpc.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/async-io.h>
#include <kj/timer.h>
#include <catch2/catch.hpp>

#include <string>
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
  CHECK(f.registry.render_prometheus().find(
            "bastion_rpc_rejected_total{reason=\"prompt_too_long\"} 1") != std::string::npos);
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
