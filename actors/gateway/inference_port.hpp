#pragma once
// The gateway's only way into the serving machinery (DESIGN.md §4): an abstract port the owner
// implements (the lead's scheduler adapter in the node, a scripted fake in tests). Plain C++
// types, no CAF and no KJ, so either side can change without the other noticing.
//
// Threading contract (the reason this file exists):
//   - The gateway calls submit(), cancel() and list_models() on its own event-loop thread. They
//     must not block: hand the work to an actor and return.
//   - The callbacks may be invoked from ANY thread (CAF workers, model threads), including
//     synchronously from inside submit(). The gateway hops them onto its loop thread itself; the
//     calling thread needs no event loop and is never blocked by a slow client.
//   - For one request: zero or more on_token calls, then exactly one on_done call, all from the
//     same logical sequence (on_token happens-before on_done; nothing after on_done). on_done is
//     owed even after cancel() (with finish_reason::cancelled or an error); the gateway stops
//     listening after cancel(), so a late on_done is harmless.

#include "actors/scheduling/capacity_policy.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace bastion::gateway {

/// Scheduler classes, highest first, numbered as schemas/inference.capnp's Priority: the
/// scheduler's own enum, so the port hands requests to it without a translation.
using priority_class = scheduling::priority_class;

/// Error codes, numbered as schemas/inference.capnp's ErrorCode.
enum class error_code : std::uint8_t {
  invalid_argument = 0,
  unknown_model = 1,
  overloaded = 2,  // retry after retry_after_ms
  deadline_exceeded = 3,
  not_primary = 4,      // retryable at leader_address
  outcome_unknown = 5,  // retryable with the same request id
  unauthenticated = 6,
  permission_denied = 7,
  internal = 8,
  cancelled = 9,
};

/// The reasons under an error code that clients see typed (inference_error::reason), numbered as
/// schemas/inference.capnp's ErrorReason. Any other reason is still counted by the front ends
/// but travels as unspecified.
enum class error_reason : std::uint8_t {
  unspecified = 0,
  prompt_too_long = 1,  // invalid_argument: the input leaves no room in the model's context
};

/// inference_error::reason of a prompt too long for the context (also the metric label).
inline constexpr std::string_view prompt_too_long_reason = "prompt_too_long";

inline error_reason typed_reason(std::string_view reason) {
  return reason == prompt_too_long_reason ? error_reason::prompt_too_long
                                          : error_reason::unspecified;
}

/// The inference_error::reason text of a typed reason; empty for unspecified.
inline std::string reason_text(error_reason reason) {
  return reason == error_reason::prompt_too_long ? std::string(prompt_too_long_reason)
                                                 : std::string();
}

/// Finish reasons, numbered as schemas/inference.capnp's FinishReason.
enum class finish_reason : std::uint8_t { stop = 0, length = 1, cancelled = 2, deadline = 3 };

struct chat_message {
  std::string role;  // system | user | assistant
  std::string content;
};

/// Exactly one kind of input: raw prompt text, chat messages (rendered with the model's chat
/// template by the engine), or pre-tokenized ids.
using inference_input =
    std::variant<std::string, std::vector<chat_message>, std::vector<std::uint32_t>>;

struct sampling_params {
  std::uint32_t max_tokens = 256;
  float temperature = 0.0F;  // 0 = greedy
  float top_p = 1.0F;
  std::uint32_t top_k = 0;  // 0 = off
  float repetition_penalty = 1.0F;
  std::uint64_t seed = 0;
  std::vector<std::string> stop;
};

struct inference_request {
  std::string request_id;  // the client's (validated) or minted by the gateway; unique
  std::string model;
  inference_input input;
  sampling_params params;
  priority_class priority = priority_class::interactive;
  std::uint32_t deadline_ms = 0;  // relative to submission; 0 = the scheduler's default
  bool stream = false;            // false: the port may skip on_token calls entirely
  std::string principal;          // the API key's name ("anonymous" when keys are off)
};

struct token_event {
  std::string text;  // the detokenized piece (may be empty for a partial UTF-8 sequence)
  std::uint32_t token_id = 0;
};

struct usage_counts {
  std::uint32_t prompt_tokens = 0;
  std::uint32_t completion_tokens = 0;
};

struct final_result {
  std::string text;  // the whole completion (also for streamed requests)
  finish_reason reason = finish_reason::stop;
  usage_counts usage;
  std::string served_model;  // the model that answered; a configured fallback names itself
  std::string site;          // the site that released the answer
  std::uint64_t epoch = 0;   // the primary's epoch at release
};

struct inference_error {
  inference_error() = default;
  inference_error(error_code c, std::string msg, std::string id, std::uint32_t retry_ms,
                  std::string leader, std::string field = {})
      : code(c),
        message(std::move(msg)),
        request_id(std::move(id)),
        retry_after_ms(retry_ms),
        leader_address(std::move(leader)),
        param(std::move(field)) {}

  error_code code = error_code::internal;
  std::string message;
  std::string request_id;
  std::uint32_t retry_after_ms = 0;  // overloaded
  std::string leader_address;        // not_primary
  // The request field at fault, when the port knows it (invalid_argument). "input" means the
  // prompt or chat as a whole (e.g. longer than the context): each front end names it in its
  // own protocol's terms. Empty: not about one field.
  std::string param;
  // A refusal the port counts under its own reason, which the front ends count too, in
  // bastion_http_rejected_total / bastion_rpc_rejected_total{reason} (e.g. "prompt_too_long").
  // Empty: none.
  std::string reason;
};

using completion = std::variant<final_result, inference_error>;

struct model_info {
  std::string id;
  std::uint32_t context_tokens_max = 4096;
  std::string owned_by = "bastion";
  std::uint64_t created_unix_s = 0;
};

using token_callback = std::function<void(token_event)>;
using completion_callback = std::function<void(completion)>;

class inference_port {
 public:
  virtual ~inference_port() = default;

  /// Starts one request. REQUIRES: request.request_id non-empty and unique among in-flight
  /// requests. Must not block; see the threading contract above.
  virtual void submit(inference_request request, token_callback on_token,
                      completion_callback on_done) = 0;

  /// Advisory: the client is gone or too slow; stop work on the request. Unknown ids are ignored.
  virtual void cancel(const std::string& request_id) = 0;

  /// The models this node serves right now. Called per request on the loop thread: return a
  /// cached snapshot, never block.
  virtual std::vector<model_info> list_models() = 0;
};

}  // namespace bastion::gateway
