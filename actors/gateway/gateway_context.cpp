#include "actors/gateway/gateway_context.hpp"

#include <chrono>

namespace bastion::gateway {

gateway_metrics::gateway_metrics(metrics::registry& reg)
    : http_connections(reg.get_gauge("bastion_gateway_http_connections",
                                     "Open client connections on the HTTP listener")),
      rpc_connections(reg.get_gauge("bastion_gateway_rpc_connections",
                                    "Open client connections on the Cap'n Proto RPC listener")),
      in_flight(reg.get_gauge("bastion_gateway_requests_in_flight",
                              "Inference requests submitted to the scheduler and not finished")),
      reg_(reg) {}

void gateway_metrics::http_answered(const std::string& route, unsigned status) {
  reg_.get_counter("bastion_http_requests_total", "HTTP requests answered, by route and status",
                   {{"route", route}, {"code", std::to_string(status)}})
      .inc();
}

void gateway_metrics::http_rejected(const std::string& reason) {
  reg_.get_counter("bastion_http_rejected_total",
                   "HTTP requests or connections refused or aborted, by reason",
                   {{"reason", reason}})
      .inc();
}

void gateway_metrics::rpc_answered(const std::string& method, const std::string& code) {
  reg_.get_counter("bastion_rpc_requests_total", "RPC calls answered, by method and outcome",
                   {{"method", method}, {"code", code}})
      .inc();
}

void gateway_metrics::rpc_rejected(const std::string& reason) {
  reg_.get_counter("bastion_rpc_rejected_total",
                   "RPC connections or calls refused or aborted, by reason", {{"reason", reason}})
      .inc();
}

std::int64_t gateway_context::unix_now_s() const {
  return std::chrono::duration_cast<std::chrono::seconds>(clock.wall()).count();
}

in_flight_guard::in_flight_guard(gateway_context& ctx) : ctx_(ctx) {
  ++ctx_.in_flight;
  ctx_.metrics.in_flight.set(static_cast<double>(ctx_.in_flight));
}

in_flight_guard::~in_flight_guard() {
  --ctx_.in_flight;
  ctx_.metrics.in_flight.set(static_cast<double>(ctx_.in_flight));
}

}  // namespace bastion::gateway
