#pragma once
// health_actor: answers "how is this node?" for /healthz, `bastion health` and the embedded
// API, and samples the node's GPUs into metrics every `device_sampling::interval`: temperature,
// power, utilisation and memory through NVML (kernels/device/nvml_reader.hpp) where the driver
// is installed, and in CUDA builds whether each device still completes a round trip. It reads
// only what it is handed (identity, clock, registry, NVML library), so tests drive it on CAF's
// deterministic coordinator with a fake NVML.
//
// Two numberings (docs/decisions/0010): `device` is NVML's index, as nvidia-smi numbers the
// GPUs; `cuda_device` is a CUDA ordinal, as a gpu worker's `device` names it, which
// CUDA_VISIBLE_DEVICES (and CUDA_DEVICE_ORDER) renumber while NVML's does not change. At the
// first sample the actor reads every NVML device's PCI address once and matches the CUDA
// devices to them by address (kernels/device/pci_address.hpp); the match is kept for the life
// of the process, so no series changes its label set.
//
// Metrics (Prometheus names):
//   bastion_gpu_info{device,name,pci_bus_id} 1: pci_bus_id ("0000:3b:00.0") is left out for a
//     device whose address NVML did not give at the first sample.
//   bastion_gpu_temperature_celsius{device}, bastion_gpu_power_watts{device},
//   bastion_gpu_utilization_ratio{device} (0..1), bastion_gpu_memory_used_bytes{device},
//   bastion_gpu_memory_total_bytes{device}: created at the first successful reading; NaN while
//     a reading that once worked fails, so a stale value never passes for a fresh one.
//   bastion_gpu_sample_errors_total{device,reading,reason}: readings NVML refused.
//   CUDA builds: bastion_gpu_responsive{cuda_device,device} 1/0 and
//     bastion_gpu_probe_failures_total{cuda_device,device}: `device` is the NVML index the
//     CUDA device matched at the first sample, and is left out (for good) when it matched none,
//     so a dashboard joins them to the NVML series on `device`.
// The health report's device lines name both: "cuda:0 NVIDIA H200 (sm_90, 140 GiB, PCI
// 0000:3b:00.0, nvidia-smi 2)", or why there is no nvidia-smi index; before the first sample
// (and with sampling off) they end at the PCI address.

#include "kernels/device/device_info.hpp"
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
#include <optional>
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
  std::vector<std::string> devices;  // "cuda:0 NVIDIA H200 (sm_90, 140 GiB, PCI 0000:3b:00.0,
                                     // nvidia-smi 2)"; empty: none
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

/// The CUDA devices this process sees (kernels::cuda::list_devices): none in a build without
/// CUDA, with `note` saying why there are none when there are none.
std::vector<kernels::device::device_info> list_cuda_devices(std::string& note);

/// The labels of a CUDA device's series (bastion_gpu_responsive, ..._probe_failures_total):
/// cuda_device, and device (NVML's index) when `match` found one.
metrics::labels cuda_device_labels(int ordinal, const kernels::device::device_match* match);

/// How the actor samples the GPUs. With no registry or a zero interval it samples nothing.
struct device_sampling {
  metrics::registry* registry = nullptr;     // where the readings are published
  std::chrono::milliseconds interval{5000};  // config: node.device_sample_ms
  std::string nvml_library;                  // what to dlopen: default_nvml_library() in a node
  // CUDA builds: the devices whose responsiveness is probed, the ones this node's gpu workers
  // use. A probe makes a CUDA context, which costs device memory, so GPUs the node does not
  // use (another process's, perhaps) are left alone; NVML reads every GPU without one.
  std::vector<int> cuda_devices;
  // The CUDA devices the health report lists and matches to NVML; nullopt: list_cuda_devices()
  // when the actor starts. Tests hand in their own, to check the matching without a GPU.
  std::optional<std::vector<kernels::device::device_info>> cuda_listing;
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
  std::vector<kernels::device::device_info> cuda_listed;  // as listed when the actor started
  // Decided once, at the first sample, and then kept (the label sets of the series they go
  // into must not change): each NVML device's PCI address ("0000:3b:00.0"; absent where NVML
  // gave none), each listed CUDA ordinal's match, and why some addresses are missing.
  bool addresses_read = false;
  std::map<unsigned, std::string> nvml_pci_bus_ids;
  std::map<int, kernels::device::device_match> cuda_to_nvml;
  std::string pci_note;
};

/// Spawn with `sys.spawn(health_actor_impl, identity, &clock, sampling)`. NVML is loaded, and
/// the first sample taken, once the actor runs, not while it is spawned.
/// REQUIRES: `clock` and `sampling.registry` outlive the actor.
health_actor::behavior_type health_actor_impl(health_actor::stateful_pointer<health_state> self,
                                              node_identity identity, const clock_source* clock,
                                              device_sampling sampling);

}  // namespace bastion::actors
