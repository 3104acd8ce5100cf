#pragma once
// One site's serving machinery (local_serving) on SmolLM2 behind a real gateway on loopback
// ports, for the end-to-end tests. Built like bastion-node builds it: node_config ->
// local_serving::start -> gateway_server over its port.

#include "actors/gateway/gateway_server.hpp"
#include "actors/serving/local_serving.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/metrics/registry.hpp"
#include "tests/support/model_path.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <array>
#include <memory>
#include <stdexcept>
#include <string>

namespace bastion::serving::testing {

inline config::node_config smollm2_config(std::uint32_t batch_max,
                                          std::array<std::size_t, 4> queue_max = {64, 64, 64, 64},
                                          std::uint32_t kv_blocks = 96) {
  config::node_config cfg;
  cfg.node.name = "test-1";
  cfg.node.site = "prod";
  config::model_section m;
  m.id = "smollm2";
  m.path = bastion::test::smollm2_path();
  m.context_tokens_max = 2048;
  cfg.models = {m};
  config::worker_section w;
  w.id = "cpu-0";
  w.kind = "cpu";
  w.models = {"smollm2"};
  w.batch_max = batch_max;
  w.threads = 1;
  w.kv_blocks = kv_blocks;
  cfg.workers = {w};
  cfg.scheduler.queue_max = queue_max;
  cfg.scheduler.deadline_ms_default = 60000;
  cfg.scheduler.retry_after_ms_min = 50;
  return cfg;
}

struct test_node {
  explicit test_node(const config::node_config& cfg) {
    caf_cfg.set("scheduler.max-threads", 2);
    sys = std::make_unique<caf::actor_system>(caf_cfg);
    auto started = local_serving::start(*sys, cfg, registry);
    if (!started) throw std::runtime_error("local_serving::start: " + sys->render(started.error()));
    serving = std::move(*started);
    gateway::gateway_settings gs = gateway::settings_from_config(cfg);
    gs.http_listen = {"127.0.0.1", 0};
    gs.rpc_listen = {"127.0.0.1", 0};
    gs.http_enabled = true;
    gs.rpc_enabled = true;
    gs.api_keys.clear();
    gs.allow_anonymous = true;
    gs.disconnect_check_ms = 50;
    gs.deadline_grace_ms = 2000;
    gw = std::make_unique<gateway::gateway_server>(gs, serving->port(), registry, clock,
                                                   [] { return true; });
    if (auto err = gw->start()) throw std::runtime_error("gateway: " + *err);
  }
  ~test_node() {
    gw->stop();
    gw.reset();
    serving.reset();
  }

  worker_snapshot worker() { return serving->snapshot(std::chrono::seconds{5}).workers.at(0); }
  std::uint16_t http() const { return gw->http_port(); }
  std::uint16_t rpc() const { return gw->rpc_port(); }

  // Teardown order (reverse of declaration): gateway, serving, registry users, actor system.
  caf::actor_system_config caf_cfg;
  std::unique_ptr<caf::actor_system> sys;
  metrics::registry registry;
  system_clock_source clock;
  std::unique_ptr<local_serving> serving;
  std::unique_ptr<gateway::gateway_server> gw;
};

}  // namespace bastion::serving::testing
