#pragma once
// Steers the fake libnvidia-ml (fake_nvml.cpp) from a test: opens the same module the reader
// under test loads (the loader hands back the one already loaded, so both see one script) and
// resets its script on construction.

#include <dlfcn.h>

#include <stdexcept>
#include <string>

namespace bastion::testing {

class fake_nvml_control {
 public:
  explicit fake_nvml_control(const char* path) : handle_(::dlopen(path, RTLD_NOW | RTLD_LOCAL)) {
    if (!handle_) throw std::runtime_error(std::string{"cannot load the fake NVML: "} + path);
    fn<void (*)()>("bastion_fake_nvml_reset")();
  }
  ~fake_nvml_control() { ::dlclose(handle_); }
  fake_nvml_control(const fake_nvml_control&) = delete;
  fake_nvml_control& operator=(const fake_nvml_control&) = delete;

  void set_temperature(unsigned index, unsigned celsius) {
    fn<void (*)(unsigned, unsigned)>("bastion_fake_nvml_set_temperature")(index, celsius);
  }
  void set_lost(unsigned index) { fn<void (*)(unsigned)>("bastion_fake_nvml_set_lost")(index); }
  /// Moves device `index` to PCI address domain:bus:device.0.
  void set_pci(unsigned index, unsigned domain, unsigned bus, unsigned device) {
    fn<void (*)(unsigned, unsigned, unsigned, unsigned)>("bastion_fake_nvml_set_pci")(index, domain,
                                                                                      bus, device);
  }
  /// Makes nvmlDeviceGetPciInfo_v3 answer `nvml_return` (e.g. 3, not supported) for `index`.
  void set_pci_result(unsigned index, int nvml_return) {
    fn<void (*)(unsigned, int)>("bastion_fake_nvml_set_pci_result")(index, nvml_return);
  }
  /// nvmlInit_v2 calls not yet matched by nvmlShutdown.
  int live_inits() { return fn<int (*)()>("bastion_fake_nvml_live_inits")(); }

 private:
  template <class Fn>
  Fn fn(const char* symbol) {
    void* p = ::dlsym(handle_, symbol);
    if (!p) throw std::runtime_error(std::string{"the fake NVML lacks "} + symbol);
    return reinterpret_cast<Fn>(p);
  }
  void* handle_;
};

}  // namespace bastion::testing
