#pragma once
// One CUDA device as this process sees it: what kernels/cuda's list_devices reports and what
// the health actor describes and matches to NVML. Free of CUDA headers, so every build and
// test can hold one (a build without CUDA lists none; tests hand in their own).

#include "kernels/device/pci_address.hpp"

#include <cstddef>
#include <string>

namespace bastion::kernels::device {

struct device_info {
  int ordinal = 0;  // CUDA's, after CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER
  std::string name;
  int compute_major = 0;
  int compute_minor = 0;
  std::size_t memory_bytes = 0;
  // Where the GPU sits on the PCI bus: the name NVML shares, which its index does not, since
  // CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER renumber ordinals (pci_address.hpp).
  pci_address pci;
};

}  // namespace bastion::kernels::device
