#include "cluster/cuda_device_order.hpp"

#include <cstdlib>
#include <string_view>

namespace bastion::cluster {

device_order_decision decide_cuda_device_order(const char* value) {
  device_order_decision d;
  const std::string_view v = value ? value : "";
  if (v.empty()) {
    d.set_pci_bus_id = true;
    d.message =
        "CUDA_DEVICE_ORDER was unset: set to PCI_BUS_ID, so a gpu worker's device N is the GPU "
        "nvidia-smi and the bastion_gpu_* metrics call N (unless CUDA_VISIBLE_DEVICES "
        "renumbers them)";
  } else if (v != "PCI_BUS_ID") {
    d.warn = true;
    d.message = "warning: CUDA_DEVICE_ORDER=" + std::string{v} +
                " numbers the GPUs in another order than NVML's PCI bus order: a gpu worker's "
                "device N may not be the GPU labelled device=\"N\" in the bastion_gpu_* metrics "
                "and by nvidia-smi (unset it, or set PCI_BUS_ID, to make them agree)";
  }
  return d;
}

std::string describe_cuda_visible_devices(const char* value) {
  if (!value) return {};
  const std::string_view v = value;
  if (v.find_first_not_of(" \t") == std::string_view::npos)
    return "warning: CUDA_VISIBLE_DEVICES is set but empty: CUDA sees no GPU, so no gpu worker "
           "can start";
  return "CUDA_VISIBLE_DEVICES=" + std::string{v} +
         ": a gpu worker's device N is the Nth GPU in that list (device = 0 is the first), not "
         "the GPU nvidia-smi calls N; each CUDA device's line in the health report names its "
         "nvidia-smi index (matched by PCI address), as the bastion_gpu_responsive metric's "
         "device label does";
}

device_order_decision align_cuda_device_order() {
  auto d = decide_cuda_device_order(std::getenv("CUDA_DEVICE_ORDER"));
  if (d.set_pci_bus_id) ::setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID", 1);
  return d;
}

}  // namespace bastion::cluster
