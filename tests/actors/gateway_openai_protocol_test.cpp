// OpenAI request parsing/validation and response rendering, as pure functions.

#include "actors/gateway/openai_protocol.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace bastion::gateway;
using nlohmann::json;

namespace {

const std::vector<model_info> models{{"m", 100, "bastion", 0}};

openai_request ok(api_kind kind, const std::string& body) {
  auto r = parse_openai_request(kind, body, parse_limits{}, models);
  if (auto* e = std::get_if<client_error>(&r)) FAIL(e->message);
  return std::get<openai_request>(r);
}

client_error bad(api_kind kind, const std::string& body) {
  auto r = parse_openai_request(kind, body, parse_limits{}, models);
  REQUIRE(std::holds_alternative<client_error>(r));
  return std::get<client_error>(r);
}

}  // namespace

TEST_CASE("completion prompts: text, one-element arrays and token ids") {
  CHECK(std::get<std::string>(ok(api_kind::completions, R"({"model":"m","prompt":"hi"})").input) ==
        "hi");
  CHECK(std::get<std::string>(
            ok(api_kind::completions, R"({"model":"m","prompt":["hi"]})").input) == "hi");
  CHECK(std::get<std::vector<std::uint32_t>>(
            ok(api_kind::completions, R"({"model":"m","prompt":[1,2,3]})").input) ==
        std::vector<std::uint32_t>{1, 2, 3});
  CHECK(std::get<std::vector<std::uint32_t>>(
            ok(api_kind::completions, R"({"model":"m","prompt":[[4,5]]})").input) ==
        std::vector<std::uint32_t>{4, 5});
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":[1,-2]})").param == "prompt");
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":[4294967296]})").param == "prompt");
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":[[]]})").param == "prompt[0]");
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":[true]})").param == "prompt");
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":7})").param == "prompt");
  // More token ids than the context cannot be served.
  std::string ids = "[";
  for (int i = 0; i < 101; ++i) ids += (i ? ",1" : "1");
  const auto too_long = bad(api_kind::completions, R"({"model":"m","prompt":)" + ids + "]}");
  CHECK(too_long.param == "prompt");
  CHECK(too_long.reason == error_reason::prompt_too_long);  // OpenAI's context_length_exceeded
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":[1,-2]})").reason ==
        error_reason::unspecified);
}

TEST_CASE("sampling parameters: defaults, ranges and types") {
  const auto d = ok(api_kind::completions, R"({"model":"m","prompt":"x"})");
  CHECK(d.params.max_tokens == 16);
  CHECK(d.params.temperature == 0.0F);
  CHECK(d.params.top_p == 1.0F);
  CHECK(ok(api_kind::chat, R"({"model":"m","messages":[{"role":"user","content":"x"}]})")
            .params.max_tokens == 100);
  const auto p = ok(
      api_kind::completions,
      R"({"model":"m","prompt":"x","max_tokens":100,"temperature":2,"top_p":0.5,"top_k":40,)"
      R"("repetition_penalty":1.1,"seed":42,"stop":"\n","n":1,"frequency_penalty":0,"logprobs":null})");
  CHECK(p.params.max_tokens == 100);
  CHECK(p.params.temperature == 2.0F);
  CHECK(p.params.top_p == 0.5F);
  CHECK(p.params.top_k == 40);
  CHECK(p.params.seed == 42);
  CHECK(p.params.stop == std::vector<std::string>{"\n"});
  CHECK(ok(api_kind::chat,
           R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":5,)"
           R"("max_completion_tokens":7})")
            .params.max_tokens == 7);
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":"x","max_tokens":101})").param ==
        "max_tokens");
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":"x","max_tokens":1.5})").param ==
        "max_tokens");
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":"x","temperature":-0.1})").param ==
        "temperature");
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":"x","temperature":"hot"})").param ==
        "temperature");
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":"x","top_p":1.01})").param == "top_p");
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":"x","top_k":1.5})").param == "top_k");
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":"x","seed":"1"})").param == "seed");
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":"x","stop":[""]})").param == "stop");
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":"x","stop":[1]})").param == "stop");
  CHECK(bad(api_kind::completions,
            R"({"model":"m","prompt":"x","stop":")" + std::string(300, 'a') + "\"}")
            .param == "stop");
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":"x","presence_penalty":0.5})").param ==
        "presence_penalty");
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":"x","echo":true})").param == "echo");
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":"x","logprobs":2})").param ==
        "logprobs");
  CHECK(bad(api_kind::completions,
            R"({"model":"m","prompt":"x","stream_options":{"include_usage":true}})")
            .param == "stream_options");
  CHECK(ok(api_kind::completions,
           R"({"model":"m","prompt":"x","stream":true,"stream_options":{"include_usage":true}})")
            .include_usage);
}

TEST_CASE("hostile JSON: malformed, deeply nested, invalid UTF-8 never throw") {
  auto e = bad(api_kind::completions, R"({"model":"m","prompt":"x"} trailing)");
  CHECK(e.message.find("at byte") != std::string::npos);
  CHECK(bad(api_kind::completions, "").message.find("not valid JSON") != std::string::npos);
  CHECK(bad(api_kind::completions, std::string(100000, '[')).code == error_code::invalid_argument);
  CHECK(bad(api_kind::completions, R"({"model":"m","prompt":")" + std::string("\xff\xfe") + "\"}")
            .code == error_code::invalid_argument);
  std::string deep = R"({"model":"m","prompt":"x","extra":)" + std::string(20000, '[') +
                     std::string(20000, ']') + "}";
  CHECK(ok(api_kind::completions, deep).model == "m");  // unknown fields are ignored, however deep
}

TEST_CASE(
    "rendering: unary, chunks, usage, errors, models; invalid UTF-8 from a model is replaced") {
  response_meta meta{"req-1", 1700000000, "m"};
  final_result r;
  r.text = "ok\xe4";  // a token boundary inside a UTF-8 sequence
  r.reason = finish_reason::length;
  r.usage = {3, 4};
  const auto chat = json::parse(render_response(api_kind::chat, meta, r));
  CHECK(chat["id"] == "req-1");
  CHECK(chat["object"] == "chat.completion");
  CHECK(chat["created"] == 1700000000);
  CHECK(chat["choices"][0]["finish_reason"] == "length");
  CHECK(chat["choices"][0]["message"]["content"] == "ok\xef\xbf\xbd");
  CHECK(chat["usage"]["total_tokens"] == 7);
  const auto chunk = json::parse(render_text_chunk(api_kind::completions, meta, "a", true));
  CHECK(chunk["choices"][0]["text"] == "a");
  CHECK(chunk["choices"][0]["finish_reason"].is_null());
  const auto fin =
      json::parse(render_finish_chunk(api_kind::chat, meta, finish_reason::stop, &r.usage));
  CHECK(fin["choices"][0]["delta"] == json::object());
  CHECK(fin["usage"]["completion_tokens"] == 4);
  CHECK(fin["system_fingerprint"].is_null());  // a single node: no site released it
  // In a cluster the closing chunks name the releasing site and epoch, like the unary answer.
  auto released = r;
  released.site = "dr-local";
  released.epoch = 7;
  CHECK(system_fingerprint_of(released) == "bastion:dr-local:7");
  CHECK(system_fingerprint_of(r).empty());
  const auto fin_site = json::parse(render_finish_chunk(api_kind::chat, meta, finish_reason::stop,
                                                        &r.usage, system_fingerprint_of(released)));
  CHECK(fin_site["system_fingerprint"] == "bastion:dr-local:7");
  const auto usage_site = json::parse(
      render_usage_chunk(api_kind::chat, meta, r.usage, system_fingerprint_of(released)));
  CHECK(usage_site["system_fingerprint"] == "bastion:dr-local:7");
  CHECK(json::parse(render_response(api_kind::chat, meta, released))["system_fingerprint"] ==
        "bastion:dr-local:7");
  const auto err = json::parse(render_error_body("m", "t", "", "c"));
  CHECK(err ==
        json{{"error", {{"message", "m"}, {"type", "t"}, {"param", nullptr}, {"code", "c"}}}});
  CHECK(http_shape_for(error_code::overloaded).status == 429);
  CHECK(http_shape_for(error_code::not_primary).status == 503);
  CHECK(http_shape_for(error_code::unknown_model).status == 404);
  // A prompt too long for the context takes OpenAI's own code; its other fields are unchanged.
  const auto too_long = http_shape_for(error_code::invalid_argument, error_reason::prompt_too_long);
  CHECK(too_long.status == 400);
  CHECK(std::string(too_long.type) == "invalid_request_error");
  CHECK(std::string(too_long.code) == "context_length_exceeded");
  CHECK(std::string(http_shape_for(error_code::invalid_argument, error_reason::unspecified).code) ==
        "invalid_argument");
  // The reason refines invalid_argument only.
  CHECK(std::string(http_shape_for(error_code::internal, error_reason::prompt_too_long).code) ==
        "internal");
}
