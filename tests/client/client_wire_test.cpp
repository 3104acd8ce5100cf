// The client library's pure pieces: addresses and redirect targets, the SSE framing, and the
// OpenAI shapes it reads.
#include "client/openai_wire.hpp"
#include "client/site_address.hpp"

#include <catch2/catch.hpp>

using namespace bastion::client_detail;

TEST_CASE("site addresses: host:port, IPv4, [IPv6]; refusals say why") {
  auto a = std::get<site_address>(parse_site_address("dr-local.bank.example:8080"));
  CHECK(a.host == "dr-local.bank.example");
  CHECK(a.port == 8080);
  auto v6 = std::get<site_address>(parse_site_address("[::1]:18080"));
  CHECK(v6.host == "::1");
  CHECK(v6.to_string() == "[::1]:18080");
  for (const char* bad : {"", "host", ":80", "host:", "host:0", "host:65536", "host:8o", "ho st:80",
                          "[::1]80", "[]:80", "[zz]:80", "a/b:80"}) {
    INFO(bad);
    CHECK(std::holds_alternative<std::string>(parse_site_address(bad)));
  }
}

TEST_CASE("redirect targets: only absolute http:// URLs with a port and a path") {
  auto t = std::get<redirect_target>(parse_location("http://127.0.0.1:18081/v1/completions?x=1"));
  CHECK(t.address.to_string() == "127.0.0.1:18081");
  CHECK(t.path == "/v1/completions?x=1");
  auto upper = parse_location("HTTP://h:1/p");
  CHECK(std::holds_alternative<redirect_target>(upper));
  CHECK(std::get<std::string>(parse_location("https://h:1/p")).find("'https'") !=
        std::string::npos);
  CHECK(std::holds_alternative<std::string>(parse_location("http://h:1/p\r\nX: y")));
  CHECK(std::holds_alternative<std::string>(parse_location("http://h:1/a b")));
}

TEST_CASE("the SSE splitter joins data lines, drops comments, bounds events") {
  sse_splitter s(64);
  auto first = std::get<std::vector<std::string>>(s.feed("data: a\n"));
  CHECK(first.empty());
  CHECK(s.has_partial_event());
  auto events =
      std::get<std::vector<std::string>>(s.feed("data: b\r\n\r\n: comment\n\ndata:c\n\nda"));
  CHECK(events == std::vector<std::string>{"a\nb", "c"});
  events = std::get<std::vector<std::string>>(s.feed("ta: [DONE]\n\n"));
  CHECK(events == std::vector<std::string>{"[DONE]"});
  CHECK(std::holds_alternative<std::string>(s.feed("data: " + std::string(100, 'x') + "\n")));
  sse_splitter line_bound(64);
  CHECK(std::holds_alternative<std::string>(line_bound.feed(std::string(100, 'x'))));
}

TEST_CASE("fingerprints and chunks in the gateway's shapes") {
  bastion::client_result r;
  CHECK(read_fingerprint("bastion:dr-remote:12", r));
  CHECK(r.site == "dr-remote");
  CHECK(r.epoch == 12);
  for (const char* bad : {"", "fp_123", "bastion:", "bastion:prod", "bastion::3", "bastion:p:x"}) {
    bastion::client_result untouched;
    CHECK_FALSE(read_fingerprint(bad, untouched));
    CHECK(untouched.site.empty());
  }
  auto chunk = std::get<stream_chunk>(parse_stream_chunk(
      R"({"choices":[{"index":0,"delta":{"content":"Hi","role":"assistant"},"finish_reason":null}]})",
      true));
  CHECK(chunk.text == "Hi");
  CHECK_FALSE(chunk.finish);
  auto fin = std::get<stream_chunk>(parse_stream_chunk(
      R"({"choices":[{"text":"","finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})",
      false));
  CHECK(fin.finish == bastion::finish_reason::length);
  CHECK(fin.has_usage);
  CHECK(fin.completion_tokens == 4);
  auto err = std::get<stream_chunk>(parse_stream_chunk(
      R"({"error":{"message":"lost","type":"server_error","param":null,"code":"outcome_unknown"}})",
      false));
  REQUIRE(err.error);
  CHECK(err.error->code == "outcome_unknown");
  CHECK(std::holds_alternative<std::string>(
      parse_stream_chunk(R"({"choices":[{"text":"a"}],"usage":{"prompt_tokens":-1}})", false)));
  // Brackets inside a string are the model's text.
  const std::string code(40, '[');
  auto text = std::get<stream_chunk>(
      parse_stream_chunk(R"({"choices":[{"text":")" + code + R"(\"]"}]})", false));
  CHECK(text.text == code + "\"]");
  // Unbalanced nesting is not JSON.
  CHECK(std::holds_alternative<std::string>(
      parse_stream_chunk(R"({"choices":)" + std::string(40, '[') + "]", false)));
  // Deep but valid nesting in a field the client does not read is parsed and freed without
  // recursion (a recursive parser or destructor would overflow the stack here) and ignored.
  const std::size_t depth = 200000;
  auto deep = std::get<stream_chunk>(parse_stream_chunk(R"({"choices":[{"text":"ok"}],"extra":)" +
                                                            std::string(depth, '[') +
                                                            std::string(depth, ']') + "}",
                                                        false));
  CHECK(deep.text == "ok");
}

TEST_CASE("request bodies carry what the gateway reads, and only set fields") {
  bastion::request r;
  r.model = "m";
  r.messages = {{"user", "q"}};
  r.seed = 5;
  const auto body = render_request_body(r, true);
  CHECK(body.find(R"("messages":[{"content":"q","role":"user"}])") != std::string::npos);
  CHECK(body.find(R"("stream":true)") != std::string::npos);
  CHECK(body.find(R"("seed":5)") != std::string::npos);
  CHECK(body.find("top_k") == std::string::npos);
  CHECK(std::string(path_for(r)) == "/v1/chat/completions");
  r.messages.clear();
  r.prompt = std::string("bad \xff utf8");
  // Invalid UTF-8 is replaced by U+FFFD rather than thrown.
  CHECK(render_request_body(r, false).find("bad \xEF\xBF\xBD utf8") != std::string::npos);
  CHECK(std::string(path_for(r)) == "/v1/completions");
}
