#include "actors/coordination/journal_links.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace bastion::coordination {

namespace {

using connect_atom = caf::atom_constant<caf::atom("jconnect")>;

actors::raft_link::behavior_type forwarder(actors::raft_link::pointer self,
                                           actors::replicator_actor local) {
  return {[self, local](wire::frame& f) { self->send(local, std::move(f)); }};
}

struct linker_state {
  actors::replicator_actor replicator;
  std::uint64_t peer_id = 0;
  std::string host;
  std::uint16_t port = 0;
  std::chrono::milliseconds retry{300};
  actors::raft_link link;
};

caf::behavior linker(caf::stateful_actor<linker_state>* self, actors::replicator_actor replicator,
                     std::uint64_t peer_id, std::string host, std::uint16_t port,
                     std::chrono::milliseconds retry) {
  auto& st = self->state;
  st.replicator = std::move(replicator);
  st.peer_id = peer_id;
  st.host = std::move(host);
  st.port = port;
  st.retry = retry;
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& s = self->state;
    if (dm.source != s.link.address()) return;
    s.link = nullptr;
    self->send(s.replicator, actors::peer_link_atom::value, s.peer_id, actors::raft_link{});
    self->send(self, connect_atom::value);
  });
  self->send(self, connect_atom::value);
  return {
      [self](connect_atom) {
        auto& s = self->state;
        if (s.link) return;
        // Blocking, which is why this actor is detached: connection refused returns at once.
        auto link = self->system().middleman().remote_actor<actors::raft_link>(s.host, s.port);
        if (!link) {
          self->delayed_send(self, s.retry, connect_atom::value);
          return;
        }
        s.link = *link;
        self->monitor(s.link);
        self->send(s.replicator, actors::peer_link_atom::value, s.peer_id, s.link);
      },
  };
}

}  // namespace

caf::expected<published_link> publish_journal_link(caf::actor_system& sys,
                                                   actors::replicator_actor replicator,
                                                   const std::string& host, std::uint16_t port) {
  auto fwd = sys.spawn(forwarder, std::move(replicator));
  auto bound = sys.middleman().publish(fwd, port, host.c_str(), true);
  if (!bound) {
    caf::anon_send_exit(fwd, caf::exit_reason::user_shutdown);
    return bound.error();
  }
  return published_link{fwd, *bound};
}

caf::actor spawn_peer_linker(caf::actor_system& sys, actors::replicator_actor replicator,
                             std::uint64_t peer_id, std::string host, std::uint16_t port,
                             std::chrono::milliseconds retry) {
  return sys.spawn<caf::detached>(linker, std::move(replicator), peer_id, std::move(host), port,
                                  retry);
}

}  // namespace bastion::coordination
