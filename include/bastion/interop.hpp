#pragma once
// Optional interop for integrators who use CAF 0.17 themselves: the node's actor system and
// its scheduler actor, so their own actors can live beside Bastion's and talk to it. Unlike
// <bastion/node.hpp>, this header exposes CAF types and changes when Bastion's CAF version
// does; include it only where you need it.

#include <bastion/node.hpp>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

namespace bastion::interop {

/// The actor system every actor of `n` runs in. REQUIRES: n is not stopped.
caf::actor_system& actor_system(node& n);

/// The scheduler actor (an invalid handle when the node serves no models).
caf::actor scheduler(node& n);

}  // namespace bastion::interop
