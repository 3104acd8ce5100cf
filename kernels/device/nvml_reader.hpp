#pragma once
// nvml_reader: temperature, power, utilisation and memory of the node's NVIDIA GPUs, read through
// NVML (libnvidia-ml), which ships with the driver rather than the CUDA toolkit. The library is
// loaded at run time with dlopen, so every build (CUDA on or off) can read it where a driver is
// installed, and no build needs nvml.h. Where the library is missing or NVML will not start,
// the reader says why (note()) and reads nothing; it never throws or aborts for that.
//
// Lives in kernels/device/ because it is device discovery like kernels/cuda's list_devices,
// needs nothing of ours or CAF, and so also builds on a GPU machine with the toolkit alone.

#include "kernels/device/pci_address.hpp"
#include "kernels/status.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bastion::kernels::device {

/// One reading NVML refused for one device: which one, a short reason fit for a metric label
/// ("not_supported", "no_permission", "gpu_is_lost", "nvml_error") and NVML's own words.
struct reading_error {
  std::string reading;  // "device" (no handle), "name", "temperature", "power", "utilization",
                        // "memory"
  std::string reason;
  std::string message;
};

/// What NVML said about one device at one moment; a reading it refused is empty and has an
/// entry in `errors`.
struct gpu_sample {
  unsigned index = 0;  // NVML's index: PCI bus order, which CUDA ordinals follow only with
                       // CUDA_DEVICE_ORDER=PCI_BUS_ID
  std::string name;
  std::optional<double> temperature_celsius;  // GPU die
  std::optional<double> power_watts;          // board draw
  std::optional<double> utilization_ratio;    // share of the last sample period with a kernel
                                              // running, 0..1
  std::optional<std::uint64_t> memory_used_bytes;
  std::optional<std::uint64_t> memory_total_bytes;
  std::vector<reading_error> errors;
};

/// The library a reader loads when none is named: $BASTION_NVML_LIBRARY when set (for an
/// operator whose driver lives outside the loader's path), else "libnvidia-ml.so.1".
std::string default_nvml_library();

class nvml_reader {
 public:
  /// Loads `library` (a file name the dynamic loader searches for, or a path) and initialises
  /// NVML. Failure leaves the reader unavailable with a note; it is not an exception.
  explicit nvml_reader(const std::string& library);
  ~nvml_reader();  // shuts NVML down and unloads the library
  nvml_reader(const nvml_reader&) = delete;
  nvml_reader& operator=(const nvml_reader&) = delete;

  bool available() const noexcept { return api_ != nullptr; }
  /// Empty when available; otherwise "NVML not available: <why>".
  const std::string& note() const noexcept { return note_; }

  /// Devices NVML sees (0 when unavailable, with the note as the status's message).
  status device_count(unsigned& out) const;
  /// Reads every quantity of device `index`; what NVML refuses is listed in the errors.
  /// REQUIRES: available().
  gpu_sample sample(unsigned index) const;

  /// Where device `index` sits on the PCI bus (nvmlDeviceGetPciInfo_v3), to match it with a CUDA
  /// ordinal (pci_address.hpp). Not part of sample(): an address does not change while the
  /// process runs, so callers read it once. unsupported when NVML is unavailable or the library
  /// lacks the call (pci_note() says which); device_error with NVML's words when the call fails.
  status read_pci_address(unsigned index, pci_address& out) const;
  /// Empty when read_pci_address can work; otherwise why it cannot: note() when unavailable, or
  /// the missing call (a library without it is still available() for everything else).
  const std::string& pci_note() const noexcept { return api_ ? pci_note_ : note_; }

 private:
  struct api;  // the entry points, resolved by dlsym
  void* library_ = nullptr;
  api* api_ = nullptr;
  std::string note_;
  std::string pci_note_;
};

}  // namespace bastion::kernels::device
