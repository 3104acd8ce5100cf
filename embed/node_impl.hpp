#pragma once
// node::impl, shared by embed/node.cpp (lifecycle), embed/node_requests.cpp (submit, stream,
// cancel) and embed/interop.cpp. Private: never installed.

#include <bastion/node.hpp>

#include "actors/gateway/gateway_server.hpp"
#include "actors/health_actor.hpp"
#include "actors/serving/local_serving.hpp"
#include "embed/cluster_member.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/config/node_config.hpp"
#include "runtime/metrics/registry.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <atomic>
#include <memory>
#include <optional>

namespace bastion {

struct node::impl {
  /// Starts the actor system and the health actor; with a config, also the serving machinery
  /// (which loads the models) and, when asked, the gateway's listeners. Throws start_error.
  impl(const node_options& o, std::optional<config::node_config> cfg);
  ~impl();
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  /// The port requests go through: the journaled one in a cluster, the local serving's on a
  /// single node, nullptr when the node serves no models.
  gateway::inference_port* port() const {
    if (member) return &member->port();
    return serving ? &serving->port() : nullptr;
  }

  void stop();

  // Members in teardown order, last declared is destroyed first (STYLE.md 12): the gateway
  // goes before the serving machinery it calls, which goes before the actor system.
  node_options options;
  std::optional<config::node_config> cfg;
  system_clock_source clock;
  metrics::registry registry;
  caf::actor_system_config system_config;
  std::optional<caf::actor_system> system;
  actors::health_actor health;
  std::unique_ptr<serving::local_serving> serving;
  std::unique_ptr<cluster_member> member;
  std::unique_ptr<gateway::gateway_server> gateway;
  std::atomic<bool> stopped{false};  // read by the gateway's /readyz on its own thread
};

}  // namespace bastion
