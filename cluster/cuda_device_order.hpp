#pragma once
// CUDA and NVML number the same GPUs differently. NVML (the health actor's bastion_gpu_*
// metrics, nvidia-smi) indexes them in PCI bus order; CUDA ordinals (a gpu worker's `device` and
// `devices`) follow CUDA_DEVICE_ORDER, whose default, FASTEST_FIRST, can put another GPU first.
// bastion-node makes them agree by choosing PCI_BUS_ID when the operator chose nothing
// (docs/decisions/0010). CUDA_VISIBLE_DEVICES renumbers CUDA's ordinals within the GPUs it lists
// and NVML ignores it; the health actor matches the two by PCI address, and bastion-node says at
// start how worker device numbers count.

#include <string>

namespace bastion::cluster {

/// What to do about CUDA_DEVICE_ORDER at start.
struct device_order_decision {
  bool set_pci_bus_id = false;  // set CUDA_DEVICE_ORDER=PCI_BUS_ID in this process
  bool warn = false;            // `message` is a warning: labels may not match workers
  std::string message;          // one line for the log; empty: nothing to say
};

/// The decision for CUDA_DEVICE_ORDER's current value (null: unset). Pure.
/// Unset or empty: set PCI_BUS_ID. PCI_BUS_ID: nothing. Anything else (FASTEST_FIRST, or a
/// value CUDA does not know and treats as its default): keep it, and warn.
device_order_decision decide_cuda_device_order(const char* value);

/// The line bastion-node prints at start about CUDA_VISIBLE_DEVICES's value (null: unset, and
/// nothing to say: empty). Pure. Set: a gpu worker's device N is the Nth GPU that list names
/// (counting from 0), not nvidia-smi's N; set but empty or blank: CUDA sees no GPU at all.
std::string describe_cuda_visible_devices(const char* value);

/// Reads CUDA_DEVICE_ORDER, applies the decision to this process's environment and returns it.
/// REQUIRES: before any CUDA call (the runtime reads the variable once, when it initialises)
/// and before other threads start (setenv is not thread-safe).
device_order_decision align_cuda_device_order();

}  // namespace bastion::cluster
