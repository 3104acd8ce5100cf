#pragma once
// The atoms of the serving protocols (scheduler and worker actors), in one place because both
// headers use some of them. Names are CAF atoms: at most 10 characters.

#include <caf/atom.hpp>

namespace bastion::serving {

using submit_atom = caf::atom_constant<caf::atom("srvsubmit")>;
using cancel_atom = caf::atom_constant<caf::atom("srvcancel")>;
using register_atom = caf::atom_constant<caf::atom("srvreg")>;
using finished_atom = caf::atom_constant<caf::atom("srvfinish")>;
using preempted_atom = caf::atom_constant<caf::atom("srvpreempt")>;
using health_atom = caf::atom_constant<caf::atom("srvhealth")>;
using tick_atom = caf::atom_constant<caf::atom("srvtick")>;
using drain_atom = caf::atom_constant<caf::atom("srvdrain")>;
using snapshot_atom = caf::atom_constant<caf::atom("srvsnap")>;
using start_atom = caf::atom_constant<caf::atom("srvstart")>;

}  // namespace bastion::serving
