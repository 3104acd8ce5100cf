#pragma once
// The OpenAI-compatible wire shapes (https://platform.openai.com/docs/api-reference): parsing and
// validating /v1/completions and /v1/chat/completions bodies, and rendering responses, stream
// chunks, model lists and errors. Pure functions over strings: no I/O, no KJ, so every rule is
// unit-tested directly. Nothing here throws to the caller: bad input comes back as a
// client_error naming the field and the reason.

#include "actors/gateway/inference_port.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace bastion::gateway {

enum class api_kind { completions, chat };

/// A refusal of the client's request, ready for the OpenAI error shape.
struct client_error {
  error_code code = error_code::invalid_argument;  // invalid_argument | unknown_model
  std::string message;
  std::string param;  // the offending field ("messages[2].content"), or empty
  error_reason reason = error_reason::unspecified;  // prompt_too_long: more tokens than context
};

struct openai_request {
  std::string model;
  inference_input input;
  sampling_params params;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

struct parse_limits {
  std::size_t chat_messages_max = 1024;
  std::size_t stop_strings_max = 4;
  std::size_t stop_bytes_max = 256;
};

/// Parses and validates a request body. `models` decides which model names exist and bounds
/// max_tokens by the model's context. Unknown fields are ignored, as OpenAI does; known fields
/// Bastion does not implement (n > 1, logprobs, tools, ...) are refused rather than ignored.
std::variant<openai_request, client_error> parse_openai_request(
    api_kind kind, std::string_view body, const parse_limits& limits,
    const std::vector<model_info>& models);

struct response_meta {
  std::string id;  // the request id
  std::int64_t created_unix_s = 0;
  std::string model;
};

/// The unary response: `text_completion` or `chat.completion`.
std::string render_response(api_kind kind, const response_meta& meta, const final_result& result);

/// A stream chunk carrying text; for chat, `with_role` adds the assistant role to the delta
/// (the first chunk of a chat stream).
std::string render_text_chunk(api_kind kind, const response_meta& meta, std::string_view text,
                              bool with_role);

/// The chunk with the finish reason. With `usage` non-null the chunk carries usage as well
/// (Bastion's final event, DESIGN.md §4); null renders `"usage": null` as OpenAI does before
/// its separate usage chunk. `fingerprint` (system_fingerprint_of) names the site and epoch
/// that released the answer, as in the unary response; empty renders null.
std::string render_finish_chunk(api_kind kind, const response_meta& meta, finish_reason reason,
                                const usage_counts* usage, std::string_view fingerprint = {});

/// OpenAI's usage chunk under stream_options.include_usage: empty choices, usage set.
std::string render_usage_chunk(api_kind kind, const response_meta& meta, const usage_counts& usage,
                               std::string_view fingerprint = {});

/// "bastion:<site>:<epoch>" for an answer released by a site of a cluster; empty without one.
std::string system_fingerprint_of(const final_result& result);

std::string render_models(const std::vector<model_info>& models);

/// {"error": {"message", "type", "param", "code"}}; an empty param renders as null.
std::string render_error_body(std::string_view message, std::string_view type,
                              std::string_view param, std::string_view code);

/// How a Bastion error shows on HTTP.
struct http_error_shape {
  unsigned status = 500;
  const char* status_text = "Internal Server Error";
  const char* type = "server_error";  // OpenAI error type
  const char* code = "internal";      // OpenAI error code (Bastion's snake_case code)
};
http_error_shape http_shape_for(error_code code);
/// The same, refined by a typed reason: a prompt too long for the context is OpenAI's
/// {"type": "invalid_request_error", "code": "context_length_exceeded"} with status 400.
http_error_shape http_shape_for(error_code code, error_reason reason);

const char* finish_reason_name(finish_reason reason);

}  // namespace bastion::gateway
