#pragma once
// health_actor: answers "how is this node?" for /healthz, `bastion health` and the embedded
// API. It reads only what it is handed (identity, clock, kernel facts), so tests can drive it
// on CAF's deterministic coordinator.

#include "runtime/clock/clock.hpp"

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace bastion::actors {

using get_health_atom = caf::atom_constant<caf::atom("gethealth")>;

struct node_identity {
  std::string node;  // unique within the cluster
  std::string site;  // "prod", "dr-local" or "dr-remote"
};

struct node_health {
  std::string node;
  std::string site;
  std::uint64_t uptime_ms = 0;
  std::string cpu_gemm;              // "openblas" or "builtin"
  bool cuda_built = false;           // compiled with the CUDA backend
  std::vector<std::string> devices;  // "cuda:0 NVIDIA H200 (sm_90, 140 GiB)"; empty: none
  std::string devices_note;          // why there are no devices, when there are none
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_health& x) {
  return f(caf::meta::type_name("bastion.node_health"), x.node, x.site, x.uptime_ms, x.cpu_gemm,
           x.cuda_built, x.devices, x.devices_note);
}

using health_actor = caf::typed_actor<caf::replies_to<get_health_atom>::with<node_health>>;

struct health_state {
  static inline const char* name = "bastion.health";
  node_identity identity;
  const clock_source* clock = nullptr;
  clock_source::duration started{};
  node_health facts;  // the parts that do not change while the node runs
};

/// Spawn with `sys.spawn(health_actor_impl, identity, &clock)`.
/// REQUIRES: `clock` outlives the actor.
health_actor::behavior_type health_actor_impl(health_actor::stateful_pointer<health_state> self,
                                              node_identity identity, const clock_source* clock);

/// Facts about the kernels and devices of this process, probed once.
node_health probe_node_facts();

}  // namespace bastion::actors
