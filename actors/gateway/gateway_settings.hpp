#pragma once
// Everything the gateway is tuned by, in one struct (STYLE.md 10, 11): the listeners and limits
// from the node config, plus the gateway's own bounds, each with its behaviour at the bound.

#include "runtime/config/node_config.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace bastion::gateway {

struct gateway_settings {
  config::listen_section http_listen{"127.0.0.1", 8080};  // port 0 here means "any free port"
  config::listen_section rpc_listen{"127.0.0.1", 0};
  bool http_enabled = true;
  bool rpc_enabled = true;

  std::size_t body_bytes_max = std::size_t{1} << 20;  // larger: 413, body not read
  std::size_t connections_max = 256;  // per listener; more: refused with 503 / closed
  // No request bytes this long: the connection is closed (HTTP: KJ's header timeouts; RPC: see
  // rpc_connection.hpp, which spares a connection whose call is still running).
  std::uint32_t idle_timeout_ms = 30000;

  std::uint32_t deadline_ms_default = 60000;  // when the client gives none
  std::uint32_t deadline_grace_ms = 5000;     // past the deadline, the gateway answers 504 itself
  std::uint32_t stream_stall_ms = 10000;    // a client accepting no stream bytes this long: cancel
  std::size_t stream_tokens_max = 4096;     // tokens buffered per request; more: cancel
  std::uint32_t disconnect_check_ms = 250;  // how often a waiting request looks for a gone client
  std::uint32_t drain_timeout_ms = 10000;   // stop(): in-flight requests get this long
  std::uint32_t admin_timeout_ms = 15000;   // an admin request unanswered this long: 504

  // Untrusted Cap'n Proto bytes (DESIGN.md §3): explicit limits, well under capnp's defaults.
  std::uint64_t rpc_traversal_words_max = (std::uint64_t{1} << 20) / 8 * 2;
  int rpc_nesting_max = 16;

  std::size_t chat_messages_max = 1024;
  std::size_t stop_strings_max = 4;  // as OpenAI
  std::size_t stop_bytes_max = 256;

  std::vector<config::api_key_section> api_keys;
  bool allow_anonymous = false;  // only meaningful with no keys configured
};

/// The node config's http/rpc/api_keys/scheduler values mapped onto the gateway's settings;
/// the gateway's own bounds keep their defaults. The RPC traversal limit follows body_bytes_max
/// (twice it, in words), so one limit governs both protocols.
gateway_settings settings_from_config(const config::node_config& cfg);

}  // namespace bastion::gateway
