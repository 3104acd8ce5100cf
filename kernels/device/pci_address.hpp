#pragma once
// pci_address: where a GPU sits on the PCI bus, the one name for it that CUDA and NVML share.
// CUDA ordinals (a gpu worker's `device`) follow CUDA_DEVICE_ORDER and are renumbered by
// CUDA_VISIBLE_DEVICES; NVML indexes (the bastion_gpu_* metrics, nvidia-smi) follow neither.
// Matching the two by address gives each CUDA ordinal the index nvidia-smi shows for the same
// GPU, whatever either variable says (docs/decisions/0010).
//
// Pure: the CUDA side comes from cudaDeviceProp (kernels/cuda), the NVML side from
// nvml_reader::pci_address; both are handed in, so the matching is tested without a GPU.

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace bastion::kernels::device {

/// A PCI address without its function, which neither CUDA's device properties nor NVML's
/// numeric fields give (a GPU is function 0). Compared as numbers: CUDA and NVML print them
/// differently ("0000:3b:00.0" vs "00000000:3B:00.0").
struct pci_address {
  std::uint32_t domain = 0;
  std::uint32_t bus = 0;
  std::uint32_t device = 0;  // the slot on the bus, not a CUDA or NVML device number
};

inline bool operator==(const pci_address& a, const pci_address& b) {
  return a.domain == b.domain && a.bus == b.bus && a.device == b.device;
}
inline bool operator!=(const pci_address& a, const pci_address& b) { return !(a == b); }

/// As Linux's sysfs and lspci -D write it: "0000:3b:00.0" (lower-case hex, function 0).
std::string to_string(const pci_address& a);

/// NVML's view of the node's GPUs, as far as matching needs it.
struct nvml_addresses {
  std::string unavailable;  // non-empty: NVML could not be read, and why; `by_index` is empty
  // By NVML index: the device's address, or nullopt where NVML gave none (an older driver
  // without nvmlDeviceGetPciInfo_v3, or the call failed for that device).
  std::map<unsigned, std::optional<pci_address>> by_index;
};

/// What matching found for one CUDA ordinal: NVML's index for the same GPU, or why there is
/// none (a short phrase for a log line: "NVML not available", "no NVML device at this PCI
/// address", ...).
struct device_match {
  std::optional<unsigned> nvml_index;
  std::string why_not;  // empty when nvml_index is set
};

/// Gives each CUDA ordinal in `cuda` (ordinal -> its address) the NVML index at the same
/// address. An address two NVML devices claim matches neither (a broken report, not a guess).
std::map<int, device_match> match_cuda_to_nvml(const std::map<int, pci_address>& cuda,
                                               const nvml_addresses& nvml);

}  // namespace bastion::kernels::device
