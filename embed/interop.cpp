// include/bastion/interop.hpp: the CAF handles behind a node, for integrators who use CAF.

#include <bastion/interop.hpp>

#include "embed/node_impl.hpp"

namespace bastion::interop {

caf::actor_system& actor_system(node& n) {
  auto* i = n.impl_for_interop();
  if (!i->system) throw node_error("node '" + i->options.name + "' is stopped");
  return *i->system;
}

caf::actor scheduler(node& n) {
  auto* i = n.impl_for_interop();
  return i->serving ? i->serving->scheduler() : caf::actor{};
}

}  // namespace bastion::interop
