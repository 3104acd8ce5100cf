#pragma once
// Requests and results of the embedded API (<bastion/node.hpp>): plain C++ types, stable
// across releases, no CAF, Cap'n Proto or kernel types.

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace bastion {

/// Scheduler classes, highest first (DESIGN.md §4): production overtakes and may preempt the
/// others; the capacity windows of the config share the workers among them.
enum class priority : std::uint8_t { production = 0, interactive = 1, batch = 2, training = 3 };

struct chat_message {
  std::string role;  // system | user | assistant
  std::string content;
};

/// One inference. Exactly one of `prompt` (raw completion) and `messages` (a chat, rendered
/// with the model's template) is non-empty.
struct request {
  std::string model;  // a model id of the node's config
  std::string prompt;
  std::vector<chat_message> messages;

  std::uint32_t max_tokens = 256;
  float temperature = 0.0F;  // 0 = greedy
  float top_p = 1.0F;
  std::uint32_t top_k = 0;  // 0 = off
  float repetition_penalty = 1.0F;
  std::uint64_t seed = 0;
  std::vector<std::string> stop;  // at most 4

  priority cls = priority::interactive;
  std::chrono::milliseconds deadline{0};  // from submission; 0 = the node's default
  std::string request_id;                 // empty: the node mints one
};

enum class finish_reason : std::uint8_t { stop, length, cancelled, deadline };
const char* to_string(finish_reason r) noexcept;

struct result {
  std::string request_id;
  std::string text;  // the whole completion
  finish_reason reason = finish_reason::stop;
  std::uint32_t prompt_tokens = 0;
  std::uint32_t completion_tokens = 0;
  std::string served_model;  // a configured fallback model names itself here
  std::string site;
};

/// Why a request failed; numbered as schemas/inference.capnp's ErrorCode.
enum class error_kind : std::uint8_t {
  invalid_argument = 0,
  unknown_model = 1,
  overloaded = 2,  // retry after retry_after
  deadline_exceeded = 3,
  not_primary = 4,
  outcome_unknown = 5,
  unauthenticated = 6,
  permission_denied = 7,
  internal = 8,
  cancelled = 9,
};
const char* to_string(error_kind k) noexcept;

/// The failure of one request (thrown by the future's get()); what() says what and why.
class request_error : public std::runtime_error {
 public:
  request_error(error_kind kind, const std::string& message, std::string request_id,
                std::chrono::milliseconds retry_after = std::chrono::milliseconds{0})
      : std::runtime_error(message),
        kind_(kind),
        request_id_(std::move(request_id)),
        retry_after_(retry_after) {}
  error_kind kind() const noexcept { return kind_; }
  const std::string& request_id() const noexcept { return request_id_; }
  std::chrono::milliseconds retry_after() const noexcept { return retry_after_; }

 private:
  error_kind kind_;
  std::string request_id_;
  std::chrono::milliseconds retry_after_;
};

}  // namespace bastion
