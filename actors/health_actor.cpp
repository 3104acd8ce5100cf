#include "actors/health_actor.hpp"

#include "kernels/backend.hpp"
#include "kernels/device/nvml_reader.hpp"
#ifdef BASTION_USE_CUDA
#include "kernels/cuda/cuda_backend.hpp"
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>

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

device_sampling node_device_sampling(metrics::registry& registry, std::uint32_t interval_ms,
                                     std::vector<int> cuda_devices) {
  std::sort(cuda_devices.begin(), cuda_devices.end());
  cuda_devices.erase(std::unique(cuda_devices.begin(), cuda_devices.end()), cuda_devices.end());
  return {&registry, std::chrono::milliseconds{interval_ms},
          kernels::device::default_nvml_library(), std::move(cuda_devices)};
}

health_state::health_state() = default;
health_state::~health_state() = default;

namespace {

// NVML devices sampled at most; more than any board carries, so hitting it means a broken count.
constexpr unsigned devices_max = 64;

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

// Publishes one reading of one device: the gauge's value on success; NaN on failure when the
// gauge exists (a reading that worked before); nothing when it never worked.
void publish_reading(health_state& st, const std::string& name, const std::string& help,
                     const std::string& device, std::optional<double> value) {
  const std::string key = name + '\n' + device;
  auto it = st.device_gauges.find(key);
  if (value) {
    if (it == st.device_gauges.end())
      it = st.device_gauges
               .emplace(key, &st.sampling.registry->get_gauge(name, help, {{"device", device}}))
               .first;
    it->second->set(*value);
  } else if (it != st.device_gauges.end()) {
    it->second->set(std::numeric_limits<double>::quiet_NaN());
  }
}

std::optional<double> as_double(std::optional<std::uint64_t> v) {
  if (!v) return std::nullopt;
  return static_cast<double>(*v);
}

void publish_sample(health_state& st, const kernels::device::gpu_sample& s) {
  auto& reg = *st.sampling.registry;
  const std::string device = std::to_string(s.index);
  if (!s.name.empty())
    reg.get_gauge("bastion_gpu_info", "GPUs NVML reports, 1 per device, named",
                  {{"device", device}, {"name", s.name}})
        .set(1);
  publish_reading(st, "bastion_gpu_temperature_celsius", "GPU die temperature (NVML)", device,
                  s.temperature_celsius);
  publish_reading(st, "bastion_gpu_power_watts", "GPU board power draw (NVML)", device,
                  s.power_watts);
  publish_reading(st, "bastion_gpu_utilization_ratio",
                  "Share of NVML's last sample period in which a kernel ran on the GPU", device,
                  s.utilization_ratio);
  publish_reading(st, "bastion_gpu_memory_used_bytes", "GPU memory in use (NVML)", device,
                  as_double(s.memory_used_bytes));
  publish_reading(st, "bastion_gpu_memory_total_bytes", "GPU memory installed (NVML)", device,
                  as_double(s.memory_total_bytes));
  for (const auto& e : s.errors)
    reg.get_counter("bastion_gpu_sample_errors_total",
                    "GPU readings NVML refused, by reading and reason",
                    {{"device", device}, {"reading", e.reading}, {"reason", e.reason}})
        .inc();
}

// Reads every NVML device into the registry; returns why not, or an empty string.
std::string sample_nvml(health_state& st) {
  if (!st.nvml) st.nvml = std::make_unique<kernels::device::nvml_reader>(st.sampling.nvml_library);
  if (!st.nvml->available()) return st.nvml->note();
  unsigned count = 0;
  if (auto status = st.nvml->device_count(count); !status) {
    st.sampling.registry
        ->get_counter("bastion_gpu_sample_errors_total",
                      "GPU readings NVML refused, by reading and reason",
                      {{"device", "all"}, {"reading", "device_count"}, {"reason", "nvml_error"}})
        .inc();
    return status.message();
  }
  std::string note;
  if (count > devices_max) {
    note = "NVML reports " + std::to_string(count) + " devices; sampling the first " +
           std::to_string(devices_max);
    count = devices_max;
  }
  for (unsigned i = 0; i < count; ++i) publish_sample(st, st.nvml->sample(i));
  return note;
}

#ifdef BASTION_USE_CUDA
// Whether each CUDA device a gpu worker uses still completes a small allocation and copy.
// Only those: a probe makes the device's context (as the worker on it does anyway), which
// would cost device memory on a GPU the node does not use.
std::vector<std::string> probe_cuda(health_state& st) {
  std::vector<std::string> notes;
  auto& reg = *st.sampling.registry;
  for (const int ordinal : st.sampling.cuda_devices) {
    const std::string device = std::to_string(ordinal);
    kernels::cuda::device_health health;
    const auto status = kernels::cuda::probe_device(ordinal, health);
    const bool responsive = status.is_ok() && health.responsive;
    reg.get_gauge("bastion_gpu_responsive",
                  "1 while a CUDA device completes a small allocation and copy, by CUDA ordinal",
                  {{"cuda_device", device}})
        .set(responsive ? 1 : 0);
    if (!responsive) {
      reg.get_counter("bastion_gpu_probe_failures_total",
                      "CUDA device probes that failed, by CUDA ordinal", {{"cuda_device", device}})
          .inc();
      notes.push_back("cuda:" + device + " probe failed: " +
                      (status ? std::string{"memory read back wrong"} : status.message()));
    }
  }
  return notes;
}
#endif

// One round of sampling; returns whether there is anything to sample next time.
bool sample_devices(health_state& st) {
  std::vector<std::string> notes;
  if (auto note = sample_nvml(st); !note.empty()) notes.push_back(std::move(note));
  bool more = st.nvml->available();
#ifdef BASTION_USE_CUDA
  for (auto& n : probe_cuda(st)) notes.push_back(std::move(n));
  more = more || !st.sampling.cuda_devices.empty();
#endif
  st.facts.device_sampling_note = join(notes);
  return more;
}

}  // namespace

health_actor::behavior_type health_actor_impl(health_actor::stateful_pointer<health_state> self,
                                              node_identity identity, const clock_source* clock,
                                              device_sampling sampling) {
  auto& st = self->state;
  st.identity = std::move(identity);
  st.clock = clock;
  st.started = clock->monotonic();
  st.facts = probe_node_facts();
  st.sampling = std::move(sampling);
  if (!st.sampling.registry) {
    st.facts.device_sampling_note = "device sampling off: no metrics registry";
  } else if (st.sampling.interval.count() <= 0) {
    st.facts.device_sampling_note = "device sampling off: node.device_sample_ms = 0";
  } else {
    // Loading NVML can take a while on a machine without persistence mode: not in the spawn.
    st.facts.device_sampling_note = "devices not sampled yet";
    self->send(self, sample_devices_atom::value);
  }
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
      [self](sample_devices_atom) {
        auto& s = self->state;
        if (!s.sampling.registry || s.sampling.interval.count() <= 0) return;
        if (sample_devices(s))
          self->delayed_send(self, s.sampling.interval, sample_devices_atom::value);
      },
  };
}

}  // namespace bastion::actors
