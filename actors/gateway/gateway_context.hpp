#pragma once
// What the HTTP and RPC front ends share on the loop thread: settings, the port, keys, metrics,
// clocks and the owner's readiness check. Built by gateway_server; every member outlives every
// request. REQUIRES: used only on the gateway's loop thread (the metrics are thread-safe anyway).

#include "actors/gateway/admin_port.hpp"
#include "actors/gateway/api_keys.hpp"
#include "actors/gateway/gateway_settings.hpp"
#include "actors/gateway/inference_port.hpp"
#include "actors/gateway/request_id.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/metrics/registry.hpp"

#include <kj/async.h>
#include <kj/timer.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace bastion::gateway {

/// The gateway's metric names, in one place so the lead and dashboards find them.
class gateway_metrics {
 public:
  explicit gateway_metrics(metrics::registry& reg);

  /// bastion_http_requests_total{route, code}: every HTTP answer, by route and status.
  void http_answered(const std::string& route, unsigned status);
  /// bastion_http_rejected_total{reason}: refusals and aborts before or during a request.
  void http_rejected(const std::string& reason);
  /// bastion_rpc_requests_total{method, code}: every RPC call's outcome (ok or the error code).
  void rpc_answered(const std::string& method, const std::string& code);
  /// bastion_rpc_rejected_total{reason}: refused connections, malformed messages, aborts, and
  /// connections closed as idle (idle_timeout) or stalled inside a message (message_timeout).
  void rpc_rejected(const std::string& reason);

  metrics::gauge& http_connections;  // bastion_gateway_http_connections
  metrics::gauge& rpc_connections;   // bastion_gateway_rpc_connections
  metrics::gauge& in_flight;         // bastion_gateway_requests_in_flight

 private:
  metrics::registry& reg_;
};

struct gateway_context {
  const gateway_settings& settings;
  inference_port& port;
  const api_key_table& keys;
  gateway_metrics& metrics;
  metrics::registry& registry;
  const clock_source& clock;
  std::function<bool()> ready;
  id_source mint_id;
  kj::Timer& timer;
  std::size_t in_flight = 0;
  admin_port* admin = nullptr;  // /admin/v1 answers 404 without one

  std::int64_t unix_now_s() const;
  std::string metrics_text() const { return registry.render_prometheus(); }
  /// The deadline the port is given: the client's, else the configured default.
  std::uint32_t effective_deadline_ms(std::uint32_t requested_ms) const {
    return requested_ms != 0 ? requested_ms : settings.deadline_ms_default;
  }
  /// How long the gateway waits for the port before answering deadline_exceeded itself.
  kj::Duration guard_for(std::uint32_t deadline_ms) const {
    return (static_cast<std::int64_t>(deadline_ms) + settings.deadline_grace_ms) * kj::MILLISECONDS;
  }
};

/// Counts a request as in flight for the lifetime of the guard.
class in_flight_guard {
 public:
  explicit in_flight_guard(gateway_context& ctx);
  ~in_flight_guard();
  in_flight_guard(const in_flight_guard&) = delete;
  in_flight_guard& operator=(const in_flight_guard&) = delete;

 private:
  gateway_context& ctx_;
};

}  // namespace bastion::gateway
