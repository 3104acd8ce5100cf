#pragma once
// The gateway as a service with an explicit lifecycle (STYLE.md 12): one thread running one KJ
// event loop that serves both the OpenAI-compatible HTTP API and the Cap'n Proto RPC service
// (docs/decisions/0005), against an inference_port supplied by the owner.
//
//   gateway_server gw(settings, port, registry, clock, ready);
//   if (auto err = gw.start()) { ...refuse to start, *err says why... }
//   ... gw.http_port(), gw.rpc_port() ...
//   gw.stop();  // drains in-flight requests for at most drain_timeout_ms, then closes
//
// The port, registry and clock must outlive the server. start() and stop() may be called from
// any thread except the gateway's own.

#include "actors/gateway/admin_port.hpp"
#include "actors/gateway/gateway_settings.hpp"
#include "actors/gateway/inference_port.hpp"
#include "actors/gateway/request_id.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/metrics/registry.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace bastion::gateway {

class gateway_server {
 public:
  /// `ready` answers /readyz (called on the loop thread; must not block). `mint_id` makes
  /// request ids (default: 128 random bits).
  gateway_server(gateway_settings settings, inference_port& port, metrics::registry& registry,
                 const clock_source& clock, std::function<bool()> ready,
                 id_source mint_id = mint_random_request_id);
  ~gateway_server();  // stop()
  gateway_server(const gateway_server&) = delete;
  gateway_server& operator=(const gateway_server&) = delete;

  /// Serves /admin/v1 through `admin` (to admin keys only). REQUIRES: before start(); `admin`
  /// outlives the server.
  void set_admin(admin_port* admin);

  /// Binds both listeners and starts serving; returns once they accept connections. A bad key
  /// table or a failed bind is returned as a message (nothing keeps running then).
  std::optional<std::string> start();

  /// Stops accepting, lets in-flight requests finish for at most drain_timeout_ms, then cancels
  /// what is left (port.cancel) and closes every connection. Idempotent.
  void stop();

  /// The bound ports (useful when the settings asked for port 0); 0 when disabled or stopped.
  std::uint16_t http_port() const;
  std::uint16_t rpc_port() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace bastion::gateway
