#pragma once
// The OpenAI-compatible JSON the client sends and reads (the gateway's side is
// actors/gateway/openai_protocol.hpp): request bodies, unary answers, stream chunks, error
// bodies, and the server-sent-event framing around chunks. Pure functions over strings; bad
// input from the wire comes back as an explanation, never an exception.

#include <bastion/client.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace bastion::client_detail {

/// The path for `r`: "/v1/chat/completions" when it has messages, else "/v1/completions".
const char* path_for(const request& r);

/// Refuses a request the gateway would refuse anyway, before sending it: why, and the field.
struct local_refusal {
  std::string message;
  std::string param;
};
std::optional<local_refusal> check_request(const request& r);

std::string render_request_body(const request& r, bool stream);

/// X-Bastion-Priority's value for `p`.
std::string priority_header_value(priority p);

/// The gateway's {"error": {...}} body; empty fields when the body is not that shape.
struct wire_error {
  std::string message;
  std::string type;
  std::string code;
  std::string param;
};
std::optional<wire_error> parse_error_body(std::string_view body);

/// A 200 unary answer. Error: why it is not the expected shape.
std::variant<client_result, std::string> parse_unary_answer(std::string_view body, bool chat);

/// "bastion:<site>:<epoch>" into result.site and result.epoch; false when it is not that.
bool read_fingerprint(std::string_view fingerprint, client_result& result);

/// One stream chunk (the JSON of one `data:` event).
struct stream_chunk {
  std::string text;                     // the text piece (may be empty)
  std::optional<finish_reason> finish;  // set on the finish chunk
  bool has_usage = false;
  std::uint32_t prompt_tokens = 0;
  std::uint32_t completion_tokens = 0;
  std::string model;
  std::string fingerprint;          // system_fingerprint, when the gateway sends one
  std::optional<wire_error> error;  // an error event ends the stream
};
std::variant<stream_chunk, std::string> parse_stream_chunk(std::string_view json, bool chat);

/// Splits a server-sent-event byte stream into events' data. Bounded: an event over
/// `event_bytes_max` is an error rather than a growing buffer.
class sse_splitter {
 public:
  explicit sse_splitter(std::size_t event_bytes_max) : event_bytes_max_(event_bytes_max) {}

  /// Appends bytes; returns the data of each event completed by them, in order ("data:" lines
  /// of one event joined by '\n'; comments and other fields dropped). Error: the event that is
  /// over the limit.
  std::variant<std::vector<std::string>, std::string> feed(std::string_view bytes);

  /// Bytes of an unfinished event are buffered.
  bool has_partial_event() const { return !pending_.empty() || !data_.empty(); }

 private:
  std::size_t event_bytes_max_;
  std::string pending_;  // an incomplete line
  std::string data_;     // the current event's data so far
  bool has_data_ = false;
};

}  // namespace bastion::client_detail
