#include "actors/gateway/gateway_settings.hpp"

namespace bastion::gateway {

gateway_settings settings_from_config(const config::node_config& cfg) {
  gateway_settings s;
  s.http_listen = cfg.http.listen;
  s.rpc_listen = cfg.rpc;
  s.http_enabled = cfg.http.listen.port != 0;
  s.rpc_enabled = cfg.rpc.port != 0;
  s.body_bytes_max = cfg.http.body_bytes_max;
  s.connections_max = cfg.http.connections_max;
  s.idle_timeout_ms = cfg.http.idle_timeout_ms;
  s.deadline_ms_default = cfg.scheduler.deadline_ms_default;
  s.rpc_traversal_words_max = cfg.http.body_bytes_max / 8 * 2;
  s.api_keys = cfg.api_keys;
  return s;
}

}  // namespace bastion::gateway
