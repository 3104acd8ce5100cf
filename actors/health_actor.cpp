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

std::vector<kernels::device::device_info> list_cuda_devices(std::string& note) {
  std::vector<kernels::device::device_info> out;
  note.clear();
#ifdef BASTION_USE_CUDA
  if (auto st = kernels::cuda::list_devices(out); !st) {
    note = st.message();
  } else if (out.empty()) {
    note = "no CUDA device visible";
  }
#else
  note = "built without the CUDA backend";
#endif
  return out;
}

metrics::labels cuda_device_labels(int ordinal, const kernels::device::device_match* match) {
  metrics::labels out{{"cuda_device", std::to_string(ordinal)}};
  if (match && match->nvml_index) out.emplace_back("device", std::to_string(*match->nvml_index));
  return out;
}

namespace {

// "cuda:0 NVIDIA H200 (sm_90, 140 GiB, PCI 0000:3b:00.0, nvidia-smi 2)"; `match` null: not
// matched yet, the line ends at the address.
std::string describe_cuda_device(const kernels::device::device_info& d,
                                 const kernels::device::device_match* match) {
  std::string line = "cuda:" + std::to_string(d.ordinal) + " " + d.name + " (sm_" +
                     std::to_string(d.compute_major) + std::to_string(d.compute_minor) + ", " +
                     std::to_string(d.memory_bytes >> 30) + " GiB, PCI " +
                     kernels::device::to_string(d.pci);
  if (match && match->nvml_index)
    line += ", nvidia-smi " + std::to_string(*match->nvml_index);
  else if (match)
    line += ", no nvidia-smi index: " + match->why_not;
  return line + ")";
}

std::vector<std::string> describe_cuda_devices(
    const std::vector<kernels::device::device_info>& listed,
    const std::map<int, kernels::device::device_match>* matches) {
  std::vector<std::string> out;
  for (const auto& d : listed) {
    const kernels::device::device_match* m = nullptr;
    if (matches)
      if (auto it = matches->find(d.ordinal); it != matches->end()) m = &it->second;
    out.push_back(describe_cuda_device(d, m));
  }
  return out;
}

// What does not change while the node runs, but for its devices.
node_health kernel_facts() {
  node_health facts;
  facts.cpu_gemm = std::string{kernels::cpu_gemm_provider()};
#ifdef BASTION_USE_CUDA
  facts.cuda_built = true;
#endif
  return facts;
}

}  // namespace

device_sampling node_device_sampling(metrics::registry& registry, std::uint32_t interval_ms,
                                     std::vector<int> cuda_devices) {
  std::sort(cuda_devices.begin(), cuda_devices.end());
  cuda_devices.erase(std::unique(cuda_devices.begin(), cuda_devices.end()), cuda_devices.end());
  device_sampling out;
  out.registry = &registry;
  out.interval = std::chrono::milliseconds{interval_ms};
  out.nvml_library = kernels::device::default_nvml_library();
  out.cuda_devices = std::move(cuda_devices);
  return out;  // cuda_listing: nullopt, listed by the actor as it starts
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
  if (!s.name.empty()) {
    metrics::labels info{{"device", device}, {"name", s.name}};
    if (auto it = st.nvml_pci_bus_ids.find(s.index); it != st.nvml_pci_bus_ids.end())
      info.emplace_back("pci_bus_id", it->second);
    reg.get_gauge("bastion_gpu_info",
                  "GPUs NVML reports, 1 per device, named, with their PCI address", info)
        .set(1);
  }
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

// Once, at the first sample: every NVML device's PCI address, and with them the NVML index of
// each listed CUDA device. `unavailable`: why NVML cannot be read (empty: it can, `count`
// devices). The device lines then name nvidia-smi's index.
void match_addresses(health_state& st, const std::string& unavailable, unsigned count) {
  st.addresses_read = true;
  kernels::device::nvml_addresses nvml;
  nvml.unavailable = unavailable;
  std::vector<std::string> missing;
  for (unsigned i = 0; unavailable.empty() && i < count; ++i) {
    kernels::device::pci_address a;
    if (auto status = st.nvml->read_pci_address(i, a); status) {
      nvml.by_index[i] = a;
      st.nvml_pci_bus_ids[i] = kernels::device::to_string(a);
    } else {
      nvml.by_index[i] = std::nullopt;
      // A library without the call fails alike for every device: said once, below.
      if (st.nvml->pci_note().empty())
        missing.push_back("nvidia-smi " + std::to_string(i) + ": " + status.message());
    }
  }
  if (unavailable.empty() && !st.nvml->pci_note().empty())
    st.pci_note = "PCI addresses unknown: " + st.nvml->pci_note();
  else if (!missing.empty())
    st.pci_note = "PCI address unknown for " + join(missing);
  std::map<int, kernels::device::pci_address> cuda;
  for (const auto& d : st.cuda_listed) cuda[d.ordinal] = d.pci;
  st.cuda_to_nvml = kernels::device::match_cuda_to_nvml(cuda, nvml);
  st.facts.devices = describe_cuda_devices(st.cuda_listed, &st.cuda_to_nvml);
}

// Reads every NVML device into the registry; returns why not, or an empty string.
std::string sample_nvml(health_state& st) {
  if (!st.nvml) st.nvml = std::make_unique<kernels::device::nvml_reader>(st.sampling.nvml_library);
  if (!st.nvml->available()) {
    if (!st.addresses_read) match_addresses(st, st.nvml->note(), 0);
    return st.nvml->note();
  }
  unsigned count = 0;
  if (auto status = st.nvml->device_count(count); !status) {
    if (!st.addresses_read) match_addresses(st, status.message(), 0);
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
  if (!st.addresses_read) match_addresses(st, "", count);
  if (!st.pci_note.empty()) note += (note.empty() ? "" : "; ") + st.pci_note;
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
    const auto match = st.cuda_to_nvml.find(ordinal);
    const auto labels =
        cuda_device_labels(ordinal, match == st.cuda_to_nvml.end() ? nullptr : &match->second);
    kernels::cuda::device_health health;
    const auto status = kernels::cuda::probe_device(ordinal, health);
    const bool responsive = status.is_ok() && health.responsive;
    reg.get_gauge("bastion_gpu_responsive",
                  "1 while a CUDA device completes a small allocation and copy, by CUDA ordinal "
                  "and the NVML index of the same GPU",
                  labels)
        .set(responsive ? 1 : 0);
    if (!responsive) {
      reg.get_counter("bastion_gpu_probe_failures_total",
                      "CUDA device probes that failed, by CUDA ordinal and NVML index", labels)
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
  st.sampling = std::move(sampling);
  st.facts = kernel_facts();
  if (st.sampling.cuda_listing) {
    st.cuda_listed = std::move(*st.sampling.cuda_listing);
    st.sampling.cuda_listing.reset();
    if (st.cuda_listed.empty()) st.facts.devices_note = "no CUDA device visible";
  } else {
    st.cuda_listed = list_cuda_devices(st.facts.devices_note);
  }
  st.facts.devices = describe_cuda_devices(st.cuda_listed, nullptr);
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
