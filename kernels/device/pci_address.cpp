#include "kernels/device/pci_address.hpp"

#include <cstdio>
#include <vector>

namespace bastion::kernels::device {

std::string to_string(const pci_address& a) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.0", static_cast<unsigned>(a.domain),
                static_cast<unsigned>(a.bus), static_cast<unsigned>(a.device));
  return buf;
}

std::map<int, device_match> match_cuda_to_nvml(const std::map<int, pci_address>& cuda,
                                               const nvml_addresses& nvml) {
  std::map<int, device_match> out;
  if (!nvml.unavailable.empty()) {
    for (const auto& [ordinal, address] : cuda) out[ordinal] = {std::nullopt, "NVML not available"};
    return out;
  }
  std::size_t without_address = 0;
  for (const auto& [index, address] : nvml.by_index)
    if (!address) ++without_address;
  for (const auto& [ordinal, address] : cuda) {
    std::vector<unsigned> at;
    for (const auto& [index, nvml_address] : nvml.by_index)
      if (nvml_address && *nvml_address == address) at.push_back(index);
    device_match& m = out[ordinal];
    if (at.size() == 1) {
      m.nvml_index = at.front();
    } else if (at.size() > 1) {
      m.why_not = "more than one NVML device at this PCI address";
    } else if (nvml.by_index.empty()) {
      m.why_not = "NVML sees no device";
    } else if (without_address == nvml.by_index.size()) {
      m.why_not = "NVML gives no PCI addresses";
    } else if (without_address > 0) {
      // It may be one of those NVML could not place: say so rather than "not there".
      m.why_not =
          "no NVML device at this PCI address (" + std::to_string(without_address) + " gave none)";
    } else {
      m.why_not = "no NVML device at this PCI address";
    }
  }
  return out;
}

}  // namespace bastion::kernels::device
