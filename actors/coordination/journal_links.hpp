#pragma once
// The journal's links between sites over CAF's middleman (DESIGN.md §3, §5): each node
// publishes one raft_link actor that forwards frames to its replicator (wire::frame is the one
// message type that crosses processes), and keeps a link to every peer's published actor,
// linking again whenever a peer's process restarts or its connection drops.

#include "actors/replicator.hpp"

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace bastion::coordination {

/// Publishes a forwarder to `replicator` on host:port (port 0: any free one) and returns the
/// forwarder and the bound port.
struct published_link {
  actors::raft_link forwarder;
  std::uint16_t port = 0;
};
caf::expected<published_link> publish_journal_link(caf::actor_system& sys,
                                                   actors::replicator_actor replicator,
                                                   const std::string& host, std::uint16_t port);

/// Keeps `replicator` linked to the peer `peer_id` published at host:port: connects (retrying
/// every `retry`), hands the link to the replicator, watches it, and connects again when it
/// goes down. One detached actor per peer, so a peer that hangs on connect delays no other.
caf::actor spawn_peer_linker(caf::actor_system& sys, actors::replicator_actor replicator,
                             std::uint64_t peer_id, std::string host, std::uint16_t port,
                             std::chrono::milliseconds retry);

}  // namespace bastion::coordination
