// A stand-in for libnvidia-ml: exports the NVML entry points nvml_reader resolves, with scripted
// answers, so the reader and the health actor's device metrics are tested on machines without a
// GPU. Built as a loadable module; tests load it by path and steer it through the
// bastion_fake_nvml_* functions (found with dlsym on the same module).
//
// Default script: two devices. 0 "Fake H200" at PCI 0000:18:00.0: 41 C, 123.456 W, 37 % busy,
// 2 GiB of 141 GiB used. 1 "Fake L4" at PCI 0001:af:00.0: no temperature sensor
// (NVML_ERROR_NOT_SUPPORTED), 72 W, idle, 0 of 24 GiB used.
// Compile definitions make variants: FAKE_NVML_INIT_RESULT (what nvmlInit_v2 returns),
// FAKE_NVML_OMIT_UTILIZATION (the module lacks nvmlDeviceGetUtilizationRates) and
// FAKE_NVML_OMIT_PCI_INFO (it lacks nvmlDeviceGetPciInfo_v3, as drivers before it did).

#include <cstdio>
#include <cstring>

#ifndef FAKE_NVML_INIT_RESULT
#define FAKE_NVML_INIT_RESULT 0
#endif

namespace {

constexpr int success = 0;
constexpr int uninitialized = 1;
constexpr int invalid_argument = 2;
constexpr int not_supported = 3;
constexpr int driver_not_loaded = 9;
constexpr int gpu_is_lost = 15;

struct fake_device {
  const char* name;
  int temperature_result;
  unsigned temperature_celsius;
  unsigned power_milliwatts;
  unsigned utilization_percent;
  unsigned long long memory_total_bytes;
  unsigned long long memory_used_bytes;
  bool lost;
  int pci_result;  // what nvmlDeviceGetPciInfo_v3 returns
  unsigned pci_domain;
  unsigned pci_bus;
  unsigned pci_device;
};

constexpr fake_device default_devices[2] = {
    {"Fake H200", success, 41, 123456, 37, 141ull << 30, 2ull << 30, false, success, 0, 0x18, 0},
    {"Fake L4", not_supported, 0, 72000, 0, 24ull << 30, 0, false, success, 1, 0xaf, 0},
};

fake_device devices[2] = {default_devices[0], default_devices[1]};
int live_inits = 0;  // nvmlInit_v2 calls not yet matched by nvmlShutdown

fake_device* device_of(void* handle) {
  for (auto& d : devices)
    if (handle == &d) return &d;
  return nullptr;
}

}  // namespace

extern "C" {

// Steering, for tests.
__attribute__((visibility("default"))) void bastion_fake_nvml_reset() {
  devices[0] = default_devices[0];
  devices[1] = default_devices[1];
}
__attribute__((visibility("default"))) void bastion_fake_nvml_set_temperature(unsigned index,
                                                                              unsigned celsius) {
  if (index < 2) {
    devices[index].temperature_result = success;
    devices[index].temperature_celsius = celsius;
  }
}
__attribute__((visibility("default"))) void bastion_fake_nvml_set_lost(unsigned index) {
  if (index < 2) devices[index].lost = true;
}
__attribute__((visibility("default"))) void bastion_fake_nvml_set_pci(unsigned index,
                                                                      unsigned domain, unsigned bus,
                                                                      unsigned device) {
  if (index < 2) {
    devices[index].pci_domain = domain;
    devices[index].pci_bus = bus;
    devices[index].pci_device = device;
  }
}
// What nvmlDeviceGetPciInfo_v3 answers for the device from now on (an NVML return code).
__attribute__((visibility("default"))) void bastion_fake_nvml_set_pci_result(unsigned index,
                                                                             int result) {
  if (index < 2) devices[index].pci_result = result;
}
__attribute__((visibility("default"))) int bastion_fake_nvml_live_inits() { return live_inits; }

// NVML's entry points, as its API reference declares them (handles are opaque pointers).
__attribute__((visibility("default"))) int nvmlInit_v2() {
  if (FAKE_NVML_INIT_RESULT == success) ++live_inits;
  return FAKE_NVML_INIT_RESULT;
}
__attribute__((visibility("default"))) int nvmlShutdown() {
  if (live_inits == 0) return uninitialized;
  --live_inits;
  return success;
}
__attribute__((visibility("default"))) const char* nvmlErrorString(int result) {
  switch (result) {
    case success:
      return "Success";
    case not_supported:
      return "Not Supported";
    case driver_not_loaded:
      return "Driver Not Loaded";
    case gpu_is_lost:
      return "GPU is lost";
    default:
      return "Unknown Error";
  }
}
__attribute__((visibility("default"))) int nvmlDeviceGetCount_v2(unsigned* count) {
  if (live_inits == 0) return uninitialized;
  *count = 2;
  return success;
}
__attribute__((visibility("default"))) int nvmlDeviceGetHandleByIndex_v2(unsigned index,
                                                                         void** handle) {
  if (live_inits == 0) return uninitialized;
  if (index >= 2) return invalid_argument;
  *handle = &devices[index];
  return success;
}
__attribute__((visibility("default"))) int nvmlDeviceGetName(void* handle, char* name,
                                                             unsigned length) {
  auto* d = device_of(handle);
  if (!d) return invalid_argument;
  if (d->lost) return gpu_is_lost;
  if (std::strlen(d->name) + 1 > length) return 7;  // NVML_ERROR_INSUFFICIENT_SIZE
  std::strcpy(name, d->name);
  return success;
}
__attribute__((visibility("default"))) int nvmlDeviceGetTemperature(void* handle, int sensor,
                                                                    unsigned* celsius) {
  auto* d = device_of(handle);
  if (!d || sensor != 0) return invalid_argument;
  if (d->lost) return gpu_is_lost;
  if (d->temperature_result != success) return d->temperature_result;
  *celsius = d->temperature_celsius;
  return success;
}
__attribute__((visibility("default"))) int nvmlDeviceGetPowerUsage(void* handle,
                                                                   unsigned* milliwatts) {
  auto* d = device_of(handle);
  if (!d) return invalid_argument;
  if (d->lost) return gpu_is_lost;
  *milliwatts = d->power_milliwatts;
  return success;
}
#ifndef FAKE_NVML_OMIT_UTILIZATION
struct fake_utilization {
  unsigned gpu;
  unsigned memory;
};
__attribute__((visibility("default"))) int nvmlDeviceGetUtilizationRates(void* handle,
                                                                         fake_utilization* u) {
  auto* d = device_of(handle);
  if (!d) return invalid_argument;
  if (d->lost) return gpu_is_lost;
  u->gpu = d->utilization_percent;
  u->memory = d->utilization_percent / 2;
  return success;
}
#endif
struct fake_memory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
__attribute__((visibility("default"))) int nvmlDeviceGetMemoryInfo(void* handle, fake_memory* m) {
  auto* d = device_of(handle);
  if (!d) return invalid_argument;
  if (d->lost) return gpu_is_lost;
  m->total = d->memory_total_bytes;
  m->used = d->memory_used_bytes;
  m->free = d->memory_total_bytes - d->memory_used_bytes;
  return success;
}

#ifndef FAKE_NVML_OMIT_PCI_INFO
struct fake_pci_info {  // nvmlPciInfo_t (v3)
  char bus_id_legacy[16];
  unsigned domain;
  unsigned bus;
  unsigned device;
  unsigned pci_device_id;
  unsigned pci_subsystem_id;
  char bus_id[32];
};
__attribute__((visibility("default"))) int nvmlDeviceGetPciInfo_v3(void* handle, fake_pci_info* p) {
  auto* d = device_of(handle);
  if (!d) return invalid_argument;
  if (d->lost) return gpu_is_lost;
  if (d->pci_result != success) return d->pci_result;
  p->domain = d->pci_domain;
  p->bus = d->pci_bus;
  p->device = d->pci_device;
  p->pci_device_id = 0x233510de;  // NVIDIA's vendor id in the low half, as NVML packs it
  p->pci_subsystem_id = 0;
  // As real NVML writes them, upper-case: the reader must use the numbers, not these strings.
  std::snprintf(p->bus_id_legacy, sizeof p->bus_id_legacy, "%04X:%02X:%02X.0",
                d->pci_domain & 0xffffu, d->pci_bus & 0xffu, d->pci_device & 0xffu);
  std::snprintf(p->bus_id, sizeof p->bus_id, "%08X:%02X:%02X.0", d->pci_domain, d->pci_bus & 0xffu,
                d->pci_device & 0xffu);
  return success;
}
#endif

}  // extern "C"
