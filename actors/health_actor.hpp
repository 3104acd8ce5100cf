#pragma once
// health_actor: answers "how is this node?" for /healthz, `bastion health` and the embedded
// API, and samples the node's GPUs into metrics every `device_sampling::interval`: temperature,
// power, utilisation and memory through NVML (kernels/device/nvml_reader.hpp) where the driver
// is installed, and in CUDA builds whether each device still completes a round trip. It reads
// only what it is handed (identity, clock, registry, NVML library), so tests drive it on CAF's
// deterministic coordinator with a fake NVML.
//
// Metrics (Prometheus names; `device` is NVML's index, as nvidia-smi numbers the GPUs):
//   bastion_gpu_info{device,name} 1
//   bastion_gpu_temperature_celsius{device}, bastion_gpu_power_watts{device},
//   bastion_gpu_utilization_ratio{device} (0..1), bastion_gpu_memory_used_bytes{device},
//   bastion_gpu_memory_total_bytes{device}: created at the first successful reading; NaN while
//     a reading that once worked fails, so a stale value never passes for a fresh one.
//   bastion_gpu_sample_errors_total{device,reading,reason}: readings NVML refused.
//   CUDA builds: bastion_gpu_responsive{cuda_device} 1/0 and
//     bastion_gpu_probe_failures_total{cuda_device}, by CUDA ordinal, which matches NVML's index
//     only with CUDA_DEVICE_ORDER=PCI_BUS_ID.

#include "runtime/clock/clock.hpp"
#include "runtime/metrics/registry.hpp"

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace bastion::kernels::device {
class nvml_reader;
}

namespace bastion::actors {

using get_health_atom = caf::atom_constant<caf::atom("gethealth")>;
/// The actor sends this to itself, once at start and then every interval.
using sample_devices_atom = caf::atom_constant<caf::atom("sampledev")>;

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
  std::string device_sampling_note;  // why GPUs are not sampled (or only partly); empty: they are
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_health& x) {
  return f(caf::meta::type_name("bastion.node_health"), x.node, x.site, x.uptime_ms, x.cpu_gemm,
           x.cuda_built, x.devices, x.devices_note, x.device_sampling_note);
}

using health_actor = caf::typed_actor<caf::replies_to<get_health_atom>::with<node_health>,
                                      caf::reacts_to<sample_devices_atom>>;

/// How the actor samples the GPUs. With no registry or a zero interval it samples nothing.
struct device_sampling {
  metrics::registry* registry = nullptr;     // where the readings are published
  std::chrono::milliseconds interval{5000};  // config: node.device_sample_ms
  std::string nvml_library;                  // what to dlopen: default_nvml_library() in a node
  // CUDA builds: the devices whose responsiveness is probed, the ones this node's gpu workers
  // use. A probe makes a CUDA context, which costs device memory, so GPUs the node does not
  // use (another process's, perhaps) are left alone; NVML reads every GPU without one.
  std::vector<int> cuda_devices;
};

/// Sampling for a node: `interval_ms` from its config, the driver's NVML (or the operator's,
/// $BASTION_NVML_LIBRARY), and the CUDA devices of its gpu workers.
device_sampling node_device_sampling(metrics::registry& registry, std::uint32_t interval_ms,
                                     std::vector<int> cuda_devices);

struct health_state {
  static inline const char* name = "bastion.health";
  health_state();
  ~health_state();  // out of line: nvml_reader is complete only in the .cpp
  node_identity identity;
  const clock_source* clock = nullptr;
  clock_source::duration started{};
  node_health facts;  // the parts that do not change while the node runs
  device_sampling sampling;
  std::unique_ptr<kernels::device::nvml_reader> nvml;  // loaded at the first sample
  // Gauges a successful reading created, by name and device: set to NaN when that reading
  // later fails. Bounded by six per device NVML reports.
  std::map<std::string, metrics::gauge*> device_gauges;
};

/// Spawn with `sys.spawn(health_actor_impl, identity, &clock, sampling)`. NVML is loaded, and
/// the first sample taken, once the actor runs, not while it is spawned.
/// REQUIRES: `clock` and `sampling.registry` outlive the actor.
health_actor::behavior_type health_actor_impl(health_actor::stateful_pointer<health_state> self,
                                              node_identity identity, const clock_source* clock,
                                              device_sampling sampling);

/// Facts about the kernels and devices of this process, probed once.
node_health probe_node_facts();

}  // namespace bastion::actors
