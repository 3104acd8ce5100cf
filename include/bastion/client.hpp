#pragma once
// The client library: asks a Bastion cluster over its OpenAI-compatible HTTP API and follows
// the primary through failovers (DESIGN.md §4-5), so an integrator's code sees one answer.
//
//   bastion::client_options opts;
//   opts.sites = {"10.0.0.1:8080", "10.0.1.1:8080", "10.9.0.1:8080"};  // prod, dr-local, dr-remote
//   opts.api_key = "sk-...";
//   bastion::client c(opts);                 // throws std::invalid_argument on bad options
//   bastion::request r;
//   r.model = "smollm2";
//   r.messages = {{"user", "What is the capital of France?"}};
//   bastion::client_outcome out = c.complete(r);
//   if (out.ok()) use(out.result->text); else report(out.error->message);
//
// What a call does (each step bounded by client_options):
//   - Sends the request with an X-Request-Id: the request's own, or one the client mints. The
//     same id goes out on every attempt and comes back in the outcome, success or not.
//   - A standby site answers 307 with the leader's address: the client follows it (at most
//     redirects_max hops in a row) and remembers that leader for later calls.
//   - A retryable failure (not_primary, outcome_unknown, any other 503, a refused, reset or
//     silent connection, a stream that ends before its final event) is retried with the SAME
//     request id on the next site (the configured one after the site the failed attempt, or
//     the redirects that led to it, started at) after a backoff that doubles from backoff_initial
//     up to backoff_max, at most attempts_max attempts and never past the call's deadline. The
//     primary answers a request id whose result it already committed from its journal, so a
//     retry never runs a released request twice.
//   - 429 overloaded: waits the Retry-After the gateway sent (at most retry_after_max) and asks
//     the same site again.
//   - Anything else (400 invalid parameters, 401, 403, 404 unknown model, 500, a malformed or
//     oversized answer, a bad redirect) ends the call at once with a typed error naming it.
//
// Streaming: `on_text` receives the text as it arrives. When a stream breaks after some text
// was delivered and the call is retried, `on_restart` is called first: forget the text so far,
// the answer is delivered again from its start (the retry either runs the request again, or the
// primary replays its committed answer, which arrives as one piece). A stream whose request id
// is already committed (a retry, or the caller asking again) is answered from the journal with
// the final event only; the client then fetches the journaled text under the same id and
// delivers it as one piece. The result's `text` is always the whole answer of the attempt that
// completed.
//
// Threads: a client may be shared by threads; each call blocks its caller and runs the
// callbacks on the caller's thread. No shared event loop, CAF or KJ is involved: each connection
// runs on its own private Asio io_context on the calling thread (Boost.Beast reads the HTTP), so
// the client can be called from anywhere, including a thread that runs a KJ event loop.
// Each request opens its own connection (no keep-alive). Plain HTTP only (TLS is the
// gateway's and a later change's). Link Bastion::bastion_client; bastion::to_string of
// request.hpp's enums lives in Bastion::bastion, so use to_string(client_error_kind) here.

#include <bastion/request.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace bastion {

struct client_options {
  /// The gateways' HTTP addresses as "host:port" (IPv4, [IPv6] or a name), asked in order:
  /// normally prod, dr-local, dr-remote. At least one.
  std::vector<std::string> sites;
  std::string api_key;  // sent as "Authorization: Bearer <key>"; empty: none sent

  /// Requests sent per call, not counting those answered by a 307; >= 1. Only a retryable
  /// failure leads to another.
  std::uint32_t attempts_max = 6;
  /// 307s followed in a row (no other answer between them); one more is too_many_redirects.
  std::uint32_t redirects_max = 4;
  std::chrono::milliseconds backoff_initial{50};    // before the first retry; doubles each retry
  std::chrono::milliseconds backoff_max{2000};      // the doubling stops here
  std::chrono::milliseconds retry_after_max{5000};  // a longer Retry-After ends the call
  std::chrono::milliseconds deadline{60000};        // the whole call, every retry and wait included
  std::chrono::milliseconds connect_timeout{2000};  // per connection attempt
  /// No byte from the gateway for this long: the attempt failed (retryable). A streamed answer
  /// resets it with every byte; a unary answer must come within it, so keep it above the
  /// longest generation you expect.
  std::chrono::milliseconds idle_timeout{30000};
  std::size_t response_bytes_max = std::size_t{8} << 20;  // a longer body: response_too_large
  std::size_t header_bytes_max = 64 * 1024;  // longer response headers: response_too_large

  /// Mints request ids for requests that bring none (default: 128 random bits as hex). An id,
  /// given or minted, must be 1..128 characters of [A-Za-z0-9._:-] (as the gateway demands):
  /// another is refused as invalid_argument before anything is sent.
  std::function<std::string()> mint_request_id;
  /// Every wait between attempts goes through here (default: std::this_thread::sleep_for), so
  /// tests can observe backoffs. Both hooks are called on the calling thread: a client shared
  /// by threads needs thread-safe hooks.
  std::function<void(std::chrono::milliseconds)> sleep;
};

enum class client_error_kind : std::uint8_t {
  // The gateway refused the request; never retried.
  invalid_argument,   // 400 (or the request is malformed before sending): see `param`
  unknown_model,      // 404 model_not_found
  unauthenticated,    // 401: missing or wrong API key
  permission_denied,  // 403: the key may not use this priority class or endpoint
  rejected,           // another 4xx (unknown URL, body too large, ...): see `code`
  server_error,       // 500 or another non-retryable server failure
  // Retried until a bound ran out.
  unavailable,        // attempts_max used up on retryable failures; `code` says the last one
  overloaded,         // 429 with a Retry-After over retry_after_max, or still 429 at the end
  deadline_exceeded,  // the call's deadline passed, or the gateway's 504
  // The answer itself was wrong; never retried.
  too_many_redirects,  // more than redirects_max 307s in a row (a redirect loop)
  bad_redirect,        // a 307 without a usable http:// Location
  bad_response,        // not HTTP, not the OpenAI JSON shape, or an SSE event that is not JSON
  response_too_large,  // headers or body over the options' bounds
};
const char* to_string(client_error_kind k) noexcept;

/// How a call went, for success and failure alike.
struct call_trace {
  std::string request_id;             // sent on every attempt: the request's own or a minted one
  std::uint32_t attempts = 0;         // requests sent, redirected ones included
  std::uint32_t redirects = 0;        // 307s followed
  std::uint32_t retries = 0;          // requests sent again after a retryable failure
  std::uint32_t stream_restarts = 0;  // on_restart calls
  std::string address;                // host:port of the last site asked
  /// One line per request sent, "host:port -> what happened": at most attempts_max +
  /// redirects_max + 2 (the redirect over the bound, and the text of a replayed stream).
  std::vector<std::string> log;
};

struct client_result {
  std::string text;  // the whole completion
  finish_reason reason = finish_reason::stop;
  std::uint32_t prompt_tokens = 0;
  std::uint32_t completion_tokens = 0;
  std::string served_model;
  /// From system_fingerprint "bastion:<site>:<epoch>": the site that released the answer and
  /// its epoch. Empty / 0 when the gateway sent none (streamed answers carry none today).
  std::string site;
  std::uint64_t epoch = 0;
};

struct client_error {
  client_error_kind kind = client_error_kind::server_error;
  std::string message;  // what went wrong and why, naming the site and the field when known
  int http_status = 0;  // the last HTTP status seen (0: none)
  std::string code;     // the gateway's error code ("not_primary", ...) or the client's own
                        // ("connection_refused", "stream_truncated", ...)
  std::string param;    // the request field at fault, when the gateway named one
  std::chrono::milliseconds retry_after{0};  // overloaded: what the gateway asked for
};

/// Exactly one of `result` and `error` is set.
struct client_outcome {
  std::optional<client_result> result;
  std::optional<client_error> error;
  call_trace trace;
  bool ok() const noexcept { return result.has_value(); }
};

struct stream_handlers {
  /// A piece of the answer, in order. Called on the calling thread.
  std::function<void(const std::string& piece)> on_text;
  /// The stream broke after text was delivered and the call is retried with the same request
  /// id: discard the text delivered so far, it comes again from the start. `why` says what
  /// broke. Optional.
  std::function<void(const std::string& why)> on_restart;
};

class client {
 public:
  /// Throws std::invalid_argument naming the option and why (no sites, an address that is not
  /// host:port, attempts_max 0, backoff_initial above backoff_max, ...).
  explicit client(client_options options);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// One unary call: /v1/completions for a prompt, /v1/chat/completions for messages.
  client_outcome complete(const request& r);

  /// One streamed call (SSE); `handlers.on_text` sees the text as it arrives.
  client_outcome stream(const request& r, const stream_handlers& handlers);

  /// The site the next call asks first: the last leader a redirect named, else the site that
  /// answered last.
  std::string preferred_site() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace bastion
