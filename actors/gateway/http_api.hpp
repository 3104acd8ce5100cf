#pragma once
// The OpenAI-compatible HTTP API on KJ's HTTP server (docs/decisions/0005): routing, request ids,
// API keys and priority classes, bounded body reading, unary answers and server-sent-event
// streams, all on the gateway's loop thread. One http_api serves every connection; the
// per-connection HttpService (http_connection_service) only adds the connection, which the API
// watches to notice a client that went away while its request waits for the model.
//
// Routes: POST /v1/completions, POST /v1/chat/completions, GET /v1/models[/{id}],
//         GET /healthz, GET /readyz, GET /metrics.

#include "actors/gateway/gateway_context.hpp"
#include "actors/gateway/openai_protocol.hpp"

#include <kj/async-io.h>
#include <kj/compat/http.h>

#include <string>

namespace bastion::gateway {

class http_api {
 public:
  /// Registers the headers it reads and writes in `headers`; the table must be built before the
  /// first request.
  http_api(gateway_context& ctx, kj::HttpHeaderTable::Builder& headers);

  kj::Promise<void> handle(kj::HttpMethod method, kj::StringPtr url, const kj::HttpHeaders& headers,
                           kj::AsyncInputStream& body, kj::HttpService::Response& response,
                           kj::AsyncIoStream& connection);

  /// KJ could not parse the request: an OpenAI-shaped 400, counted; the connection then closes.
  kj::Promise<void> answer_protocol_error(kj::StringPtr description,
                                          kj::HttpService::Response& response);
  /// A bug or unexpected failure inside handle(): an OpenAI-shaped 500 if nothing was sent yet.
  kj::Promise<void> answer_internal_error(const kj::Exception& e,
                                          kj::Maybe<kj::HttpService::Response&> response);

  gateway_context& context() { return ctx_; }

 private:
  friend class http_exchange;
  gateway_context& ctx_;
  kj::HttpHeaderTable& table_;
  kj::HttpHeaderId authorization_;
  kj::HttpHeaderId request_id_;
  kj::HttpHeaderId priority_;
  kj::HttpHeaderId deadline_;
  kj::HttpHeaderId retry_after_;
  kj::HttpHeaderId leader_;
  kj::HttpHeaderId allow_;
  kj::HttpHeaderId cache_control_;
};

// KJ's and capnp's interface classes have protected or non-virtual destructors by design (KJ
// deletes through kj::Own's disposer), which -Wnon-virtual-dtor cannot tell apart from a bug.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
/// Per-connection adapter: KJ creates one per accepted connection and destroys it when the
/// connection ends.
class http_connection_service final : public kj::HttpService {
 public:
  http_connection_service(http_api& api, kj::AsyncIoStream& connection);
  /// KJ closes a connection whose first request's headers do not arrive within the header
  /// timeout without answering it or telling us. A connection that ends no earlier than that
  /// with no request delivered was such a client (idle or trickling headers): counted here as
  /// bastion_http_rejected_total{reason="header_timeout"}.
  ~http_connection_service();
  http_connection_service(const http_connection_service&) = delete;
  http_connection_service& operator=(const http_connection_service&) = delete;

  kj::Promise<void> request(kj::HttpMethod method, kj::StringPtr url,
                            const kj::HttpHeaders& headers, kj::AsyncInputStream& body,
                            Response& response) override {
    ++requests_;
    return api_.handle(method, url, headers, body, response, connection_);
  }

 private:
  http_api& api_;
  kj::AsyncIoStream& connection_;
  kj::TimePoint opened_;
  std::size_t requests_ = 0;
};

/// Routes KJ's own error paths (unparsable requests, exceptions) through http_api.
class http_error_handler final : public kj::HttpServerErrorHandler {
 public:
  explicit http_error_handler(http_api& api) : api_(api) {}
  kj::Promise<void> handleClientProtocolError(kj::HttpHeaders::ProtocolError protocolError,
                                              kj::HttpService::Response& response) override;
  kj::Promise<void> handleApplicationError(kj::Exception exception,
                                           kj::Maybe<kj::HttpService::Response&> response) override;

 private:
  http_api& api_;
};

/// Resolves
#pragma GCC diagnostic pop

/// Resolves when the peer of `connection` has closed or reset it; never resolves otherwise.
/// Polls without consuming bytes (MSG_PEEK), so the HTTP parser's input is untouched.
kj::Promise<void> when_peer_gone(kj::Timer& timer, kj::AsyncIoStream& connection,
                                 kj::Duration poll_interval);

}  // namespace bastion::gateway
