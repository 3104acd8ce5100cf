#include "runtime/wire/announce.hpp"

#include "runtime/wire/errors.hpp"
#include "runtime/wire/frame.hpp"

#include <caf/actor_system_config.hpp>

namespace bastion::wire {

void announce_wire_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<frame>("bastion.wire.frame");
  cfg.add_error_category(wire_category::value, render_wire_error);
}

}  // namespace bastion::wire
