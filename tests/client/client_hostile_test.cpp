// The client library against answers no gateway should send: garbage or foreign redirects,
// truncated and malformed event streams, oversize heads and bodies, bytes that are not HTTP.
// Each must end as a clear typed error (or a bounded retry), never a crash or a hang.
#include <bastion/client.hpp>

#include "scripted_server.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace {

using bastion::client_error_kind;
using bastion::client_testing::scripted_server;
using std::chrono::milliseconds;

bastion::client_options options_for(const scripted_server& s) {
  bastion::client_options o;
  o.sites = {s.address()};
  o.api_key = "sk-test";
  o.attempts_max = 3;
  o.backoff_initial = milliseconds(5);
  o.backoff_max = milliseconds(10);
  o.deadline = milliseconds(5000);
  o.idle_timeout = milliseconds(1000);
  return o;
}

bastion::request ask() {
  bastion::request r;
  r.model = "echo";
  r.prompt = "hi";
  return r;
}

std::string redirect_to(const std::string& location) {
  return "HTTP/1.1 307 Temporary Redirect\r\nLocation: " + location +
         "\r\nContent-Length: 0\r\n\r\n";
}

using options_tweak = std::function<void(bastion::client_options&)>;

// One call against a scripted server, with the test's options (options_for) changed by `tweak`.
bastion::client_outcome run_against(const std::vector<std::string>& responses, bool stream,
                                    const options_tweak& tweak, std::string* seen) {
  scripted_server s(responses);
  auto o = options_for(s);
  if (tweak) tweak(o);
  bastion::client c(o);
  if (!stream) return c.complete(ask());
  bastion::stream_handlers h;
  h.on_text = [seen](const std::string& p) {
    if (seen != nullptr) *seen += p;
  };
  return c.stream(ask(), h);
}

bastion::client_outcome complete_against(const std::vector<std::string>& responses,
                                         const options_tweak& tweak = {}) {
  return run_against(responses, false, tweak, nullptr);
}

bastion::client_outcome stream_against(const std::vector<std::string>& responses,
                                       std::string* seen = nullptr,
                                       const options_tweak& tweak = {}) {
  return run_against(responses, true, tweak, seen);
}

const std::string sse_head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";

}  // namespace

TEST_CASE("hostile: a redirect's Location that is garbage or not http:// is a bad_redirect") {
  for (const std::string location :
       {"::not a url::", "ftp://127.0.0.1:21/v1/completions", "https://127.0.0.1:443/v1/x",
        "javascript:alert(1)", "http://127.0.0.1/v1/completions" /* no port */,
        "http://127.0.0.1:0/v1/completions", "http://user@127.0.0.1:80/v1",
        "http://127.0.0.1:80" /* no path */, "/v1/completions" /* relative */}) {
    INFO(location);
    const auto out = complete_against({redirect_to(location)});
    REQUIRE_FALSE(out.ok());
    CHECK(out.error->kind == client_error_kind::bad_redirect);
    CHECK(out.error->http_status == 307);
    CHECK(out.trace.attempts == 1);
  }
  const auto scheme = complete_against({redirect_to("ftp://127.0.0.1:21/v1/completions")});
  CHECK(scheme.error->message.find("only http:// is supported") != std::string::npos);
  const auto missing =
      complete_against({"HTTP/1.1 307 Temporary Redirect\r\nContent-Length: 0\r\n\r\n"});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error->kind == client_error_kind::bad_redirect);
  CHECK(missing.error->message.find("missing") != std::string::npos);
  const std::string huge(5000, 'a');
  const auto long_location = complete_against({redirect_to("http://h:1/" + huge)});
  REQUIRE_FALSE(long_location.ok());
  CHECK(long_location.error->kind == client_error_kind::bad_redirect);
}

TEST_CASE("hostile: a stream truncated inside an event is retried, then reported") {
  std::string seen;
  const auto out = stream_against({sse_head + "data: {\"choices\":[{\"text\":\"Hel"}, &seen);
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == client_error_kind::unavailable);
  CHECK(out.error->code == "stream_truncated");
  CHECK(out.error->message.find("before its final event") != std::string::npos);
  CHECK(out.trace.attempts == 3);
  CHECK(seen.empty());  // half an event is never delivered
}

TEST_CASE("hostile: [DONE] without a finish event is not a complete answer") {
  const auto out =
      stream_against({sse_head + "data: {\"choices\":[{\"text\":\"Hi\"}]}\n\ndata: [DONE]\n\n"});
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->code == "stream_truncated");
  CHECK(out.trace.stream_restarts == 2);  // text was delivered before each of the two retries
}

TEST_CASE("hostile: a stream event that is not JSON, or a chunked body that lies") {
  auto out = stream_against({sse_head + "data: <html>oops</html>\n\n"});
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == client_error_kind::bad_response);
  CHECK(out.trace.attempts == 1);

  out = stream_against(
      {sse_head + "data: {\"choices\":[{\"text\":1,\"finish_reason\":\"nope\"}]}\n\n"});
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == client_error_kind::bad_response);

  out =
      stream_against({"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      "Transfer-Encoding: chunked\r\n\r\nzz\r\ndata: x\n\n\r\n"});
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == client_error_kind::bad_response);
  CHECK(out.error->message.find("chunk size") != std::string::npos);

  // Deeply nested JSON, unbalanced: not JSON, a bad response.
  out = stream_against({sse_head + "data: " + std::string(100000, '[') + "\n\n"});
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == client_error_kind::bad_response);
}

TEST_CASE("hostile: deeply nested but valid JSON is survived and its unknown field ignored") {
  // 100000 levels: a parser or destructor that recursed would overflow the stack here.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto out =
      complete_against({"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
                        R"({"choices":[{"text":"fine","finish_reason":"stop"}],)"
                        R"("usage":{"prompt_tokens":1,"completion_tokens":1},"extra":)" +
                        deep + "}"});
  REQUIRE(out.ok());
  CHECK(out.result->text == "fine");

  // As the whole of a stream event it is not an object: a bad response, still no crash.
  out = stream_against({sse_head + "data: " + deep + "\n\n"});
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == client_error_kind::bad_response);
}

TEST_CASE("hostile: oversize answers are response_too_large, read no further") {
  const options_tweak o = [](bastion::client_options& x) {
    x.response_bytes_max = 4096;
    x.header_bytes_max = 1024;
  };

  // A Content-Length over the limit is refused before reading the body.
  auto out = complete_against({"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n{}"}, o);
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == client_error_kind::response_too_large);
  CHECK(out.trace.attempts == 1);

  // A body without a length that goes on and on.
  out = complete_against({"HTTP/1.1 200 OK\r\n\r\n" + std::string(100000, 'x')}, o);
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == client_error_kind::response_too_large);

  // A chunk that claims to be huge.
  out = complete_against(
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\nxx"}, o);
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == client_error_kind::response_too_large);

  // Headers that never end.
  out = complete_against({"HTTP/1.1 200 OK\r\nX-Junk: " + std::string(100000, 'j')}, o);
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == client_error_kind::response_too_large);

  // One SSE event larger than the whole limit.
  out = stream_against({sse_head + "data: " + std::string(100000, 'e')}, nullptr, o);
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == client_error_kind::response_too_large);
}

TEST_CASE("hostile: bytes that are not HTTP, and bodies that are not the OpenAI shape") {
  auto out = complete_against({"SSH-2.0-OpenSSH_9.2\r\n\r\n"});
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == client_error_kind::bad_response);
  CHECK(out.error->message.find("not HTTP") != std::string::npos);

  out = complete_against({"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}"});
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == client_error_kind::bad_response);

  out = complete_against({"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnull!"});
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == client_error_kind::bad_response);

  // A 503 whose body is not JSON is still a 503: retried, then unavailable.
  out = complete_against({"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy"});
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == client_error_kind::unavailable);
  CHECK(out.trace.attempts == 3);

  // A 429 with a Retry-After that is not a number falls back to the client's backoff.
  out = complete_against(
      {"HTTP/1.1 429 Too Many\r\nRetry-After: soon\r\nContent-Length: 0\r\n\r\n",
       "HTTP/1.1 200 OK\r\nContent-Length: 112\r\n\r\n"
       "{\"choices\":[{\"text\":\"ok\",\"finish_reason\":\"stop\"}],"
       "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1},\"model\":\"m\"}"});
  REQUIRE(out.ok());
  CHECK(out.result->text == "ok");
  CHECK(out.trace.retries == 1);
}

TEST_CASE("hostile: a server that closes without answering is a lost connection, retried") {
  scripted_server silent({""});  // answers with nothing, then closes
  auto o = options_for(silent);
  bastion::client c(o);
  const auto out = c.complete(ask());
  REQUIRE_FALSE(out.ok());
  CHECK(out.error->kind == client_error_kind::unavailable);
  CHECK(out.error->code == "connection_lost");
  CHECK(out.trace.attempts == o.attempts_max);  // retryable: every attempt was spent on it
}
