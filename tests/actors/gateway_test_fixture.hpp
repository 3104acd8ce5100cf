#pragma once
// A gateway on loopback ports with the fake port and two API keys, for the gateway tests.

#include "actors/gateway/api_keys.hpp"
#include "actors/gateway/gateway_server.hpp"
#include "gateway_fake_port.hpp"

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>

namespace bastion::gateway::testing {

constexpr const char* alice_key = "sk-alice-0123456789";  // interactive, batch
constexpr const char* prod_key = "sk-prod-9876543210";    // production only

inline gateway_settings test_settings() {
  gateway_settings s;
  s.http_listen = {"127.0.0.1", 0};
  s.rpc_listen = {"127.0.0.1", 0};
  s.body_bytes_max = 64 * 1024;
  s.connections_max = 16;
  s.idle_timeout_ms = 1000;
  s.stream_stall_ms = 500;
  s.stream_tokens_max = 64;
  s.disconnect_check_ms = 50;
  s.drain_timeout_ms = 2000;
  s.deadline_grace_ms = 200;
  s.api_keys = {{"alice", sha256_hex(alice_key), {"interactive", "batch"}},
                {"prod-svc", sha256_hex(prod_key), {"production"}}};
  return s;
}

struct gateway_fixture {
  explicit gateway_fixture(gateway_settings s = test_settings())
      : server(std::move(s), port, registry, clock, [this] { return ready.load(); }) {
    if (auto err = server.start()) throw std::runtime_error(*err);
  }
  ~gateway_fixture() { server.stop(); }

  std::string auth(const char* key = alice_key) const {
    return std::string("Authorization: Bearer ") + key;
  }

  fake_port port;
  metrics::registry registry;
  system_clock_source clock;
  std::atomic<bool> ready{true};
  gateway_server server;
};

}  // namespace bastion::gateway::testing
