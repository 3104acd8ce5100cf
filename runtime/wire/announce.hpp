#pragma once
// Announces the wire types to an actor system, so frames can cross nodes through the
// middleman and wire errors render readably. Call on every actor_system_config that talks to
// other nodes, before the system starts.

#include <caf/fwd.hpp>

namespace bastion::wire {

void announce_wire_types(caf::actor_system_config& cfg);

}  // namespace bastion::wire
