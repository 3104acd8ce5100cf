#include "actors/health_actor.hpp"

#include "kernels/backend.hpp"
#ifdef BASTION_USE_CUDA
#include "kernels/cuda/cuda_backend.hpp"
#endif

#include <chrono>

namespace bastion::actors {

node_health probe_node_facts() {
  node_health facts;
  facts.cpu_gemm = std::string{kernels::cpu_gemm_provider()};
#ifdef BASTION_USE_CUDA
  facts.cuda_built = true;
  std::vector<kernels::cuda::device_info> devices;
  if (auto st = kernels::cuda::list_devices(devices); !st) {
    facts.devices_note = st.message();
  } else if (devices.empty()) {
    facts.devices_note = "no CUDA device visible";
  }
  for (const auto& d : devices)
    facts.devices.push_back("cuda:" + std::to_string(d.ordinal) + " " + d.name + " (sm_" +
                            std::to_string(d.compute_major) + std::to_string(d.compute_minor) +
                            ", " + std::to_string(d.memory_bytes >> 30) + " GiB)");
#else
  facts.devices_note = "built without the CUDA backend";
#endif
  return facts;
}

health_actor::behavior_type health_actor_impl(health_actor::stateful_pointer<health_state> self,
                                              node_identity identity, const clock_source* clock) {
  auto& st = self->state;
  st.identity = std::move(identity);
  st.clock = clock;
  st.started = clock->monotonic();
  st.facts = probe_node_facts();
  return {
      [self](get_health_atom) -> node_health {
        auto& s = self->state;
        node_health out = s.facts;
        out.node = s.identity.node;
        out.site = s.identity.site;
        out.uptime_ms = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(s.clock->monotonic() - s.started)
                .count());
        return out;
      },
  };
}

}  // namespace bastion::actors
