#include "kernels/device/nvml_reader.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <memory>

namespace bastion::kernels::device {
namespace {

// NVML's C interface, declared here from its public API reference
// (docs.nvidia.com/deploy/nvml-api) rather than from nvml.h, which ships with the toolkit and
// not with the driver. Only what the reader calls. Every entry point returns an nvmlReturn_t,
// a C enum (int-sized), 0 on success.
using nvml_return = int;
struct nvml_device_st;
using nvml_device = nvml_device_st*;  // nvmlDevice_t, an opaque handle
constexpr nvml_return nvml_success = 0;
constexpr int nvml_temperature_gpu = 0;          // nvmlTemperatureSensors_t: the GPU die
constexpr unsigned nvml_name_buffer_bytes = 96;  // NVML_DEVICE_NAME_V2_BUFFER_SIZE

struct nvml_utilization {  // nvmlUtilization_t: percent of the last sample period
  unsigned int gpu;
  unsigned int memory;
};
struct nvml_memory {  // nvmlMemory_t (v1), bytes
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
struct nvml_pci_info {     // nvmlPciInfo_t as nvmlDeviceGetPciInfo_v3 fills it
  char bus_id_legacy[16];  // NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE: "0000:3B:00.0"
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pci_device_id;  // vendor and device ids, unused here
  unsigned int pci_subsystem_id;
  char bus_id[32];  // NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE: "00000000:3B:00.0"
};

// Reasons as metric labels: the few an operator acts on differently, the rest together.
const char* reason_of(nvml_return r) {
  switch (r) {
    case 3:
      return "not_supported";  // NVML_ERROR_NOT_SUPPORTED: this board lacks the sensor
    case 4:
      return "no_permission";  // NVML_ERROR_NO_PERMISSION
    case 15:
      return "gpu_is_lost";  // NVML_ERROR_GPU_IS_LOST: fallen off the bus
    default:
      return "nvml_error";
  }
}

}  // namespace

struct nvml_reader::api {
  nvml_return (*init)();
  nvml_return (*shutdown)();
  nvml_return (*device_count)(unsigned int*);
  nvml_return (*handle_by_index)(unsigned int, nvml_device*);
  nvml_return (*name)(nvml_device, char*, unsigned int);
  nvml_return (*temperature)(nvml_device, int, unsigned int*);
  nvml_return (*power_usage)(nvml_device, unsigned int*);  // milliwatts
  nvml_return (*utilization)(nvml_device, nvml_utilization*);
  nvml_return (*memory)(nvml_device, nvml_memory*);
  nvml_return (*pci_info)(nvml_device, nvml_pci_info*);  // null: the library lacks it
  const char* (*error_string)(nvml_return);

  std::string describe(nvml_return r) const {
    const char* text = error_string ? error_string(r) : nullptr;
    return (text ? std::string{text} : std::string{"error"}) + " (NVML code " + std::to_string(r) +
           ")";
  }
};

std::string default_nvml_library() {
  const char* over = std::getenv("BASTION_NVML_LIBRARY");
  return over && *over ? std::string{over} : std::string{"libnvidia-ml.so.1"};
}

namespace {

// Resolves `symbol` into `fn`; false (and `missing` names it) when the library lacks it.
template <class Fn>
bool resolve(void* library, const char* symbol, Fn& fn, std::string& missing) {
  void* p = ::dlsym(library, symbol);
  if (!p) {
    missing = symbol;
    return false;
  }
  fn = reinterpret_cast<Fn>(p);
  return true;
}

}  // namespace

nvml_reader::nvml_reader(const std::string& library) {
  const std::string prefix = "NVML not available: ";
  library_ = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!library_) {
    const char* why = ::dlerror();
    note_ = prefix + "cannot load " + library + " (" + (why ? why : "no reason given") +
            "); it comes with the NVIDIA driver";
    return;
  }
  auto fns = std::make_unique<api>();
  std::string missing;
  const bool all =
      resolve(library_, "nvmlInit_v2", fns->init, missing) &&
      resolve(library_, "nvmlShutdown", fns->shutdown, missing) &&
      resolve(library_, "nvmlDeviceGetCount_v2", fns->device_count, missing) &&
      resolve(library_, "nvmlDeviceGetHandleByIndex_v2", fns->handle_by_index, missing) &&
      resolve(library_, "nvmlDeviceGetName", fns->name, missing) &&
      resolve(library_, "nvmlDeviceGetTemperature", fns->temperature, missing) &&
      resolve(library_, "nvmlDeviceGetPowerUsage", fns->power_usage, missing) &&
      resolve(library_, "nvmlDeviceGetUtilizationRates", fns->utilization, missing) &&
      resolve(library_, "nvmlDeviceGetMemoryInfo", fns->memory, missing) &&
      resolve(library_, "nvmlErrorString", fns->error_string, missing);
  if (!all) {
    note_ = prefix + library + " has no " + missing + " (a driver older than NVML's v2 API?)";
    ::dlclose(library_);
    library_ = nullptr;
    return;
  }
  // Optional: without it only the PCI addresses are missing (CUDA ordinals cannot be matched
  // to NVML indexes), so its absence is a note, not a reason to read nothing.
  if (std::string absent; !resolve(library_, "nvmlDeviceGetPciInfo_v3", fns->pci_info, absent)) {
    fns->pci_info = nullptr;
    pci_note_ = library + " has no " + absent + " (an older driver): no PCI addresses";
  }
  if (const nvml_return r = fns->init(); r != nvml_success) {
    note_ = prefix + "nvmlInit_v2 failed: " + fns->describe(r);
    ::dlclose(library_);
    library_ = nullptr;
    return;
  }
  api_ = fns.release();
}

nvml_reader::~nvml_reader() {
  if (api_) (void)api_->shutdown();  // nothing to do about a failing shutdown at teardown
  delete api_;
  if (library_) ::dlclose(library_);
}

status nvml_reader::device_count(unsigned& out) const {
  out = 0;
  if (!api_) return {status_code::unsupported, note_};
  unsigned int n = 0;
  if (const nvml_return r = api_->device_count(&n); r != nvml_success)
    return {status_code::device_error, "nvmlDeviceGetCount_v2 failed: " + api_->describe(r)};
  out = n;
  return status::ok();
}

gpu_sample nvml_reader::sample(unsigned index) const {
  gpu_sample out;
  out.index = index;
  if (!api_) {
    out.errors.push_back({"device", "nvml_error", note_});
    return out;
  }
  auto failed = [&](const char* reading, nvml_return r) {
    out.errors.push_back({reading, reason_of(r), api_->describe(r)});
  };
  nvml_device dev = nullptr;
  if (const nvml_return r = api_->handle_by_index(index, &dev); r != nvml_success) {
    failed("device", r);
    return out;
  }
  char name[nvml_name_buffer_bytes] = {};
  if (const nvml_return r = api_->name(dev, name, sizeof name); r != nvml_success)
    failed("name", r);
  else
    out.name.assign(name, ::strnlen(name, sizeof name));
  unsigned int celsius = 0;
  if (const nvml_return r = api_->temperature(dev, nvml_temperature_gpu, &celsius);
      r != nvml_success)
    failed("temperature", r);
  else
    out.temperature_celsius = static_cast<double>(celsius);
  unsigned int milliwatts = 0;
  if (const nvml_return r = api_->power_usage(dev, &milliwatts); r != nvml_success)
    failed("power", r);
  else
    out.power_watts = static_cast<double>(milliwatts) / 1000.0;
  nvml_utilization util{};
  if (const nvml_return r = api_->utilization(dev, &util); r != nvml_success)
    failed("utilization", r);
  else
    out.utilization_ratio = static_cast<double>(util.gpu) / 100.0;
  nvml_memory mem{};
  if (const nvml_return r = api_->memory(dev, &mem); r != nvml_success) {
    failed("memory", r);
  } else {
    out.memory_used_bytes = mem.used;
    out.memory_total_bytes = mem.total;
  }
  return out;
}

status nvml_reader::read_pci_address(unsigned index, pci_address& out) const {
  out = {};
  if (!api_) return {status_code::unsupported, note_};
  if (!api_->pci_info) return {status_code::unsupported, pci_note_};
  nvml_device dev = nullptr;
  if (const nvml_return r = api_->handle_by_index(index, &dev); r != nvml_success)
    return {status_code::device_error, "nvmlDeviceGetHandleByIndex_v2(" + std::to_string(index) +
                                           ") failed: " + api_->describe(r)};
  nvml_pci_info info{};
  if (const nvml_return r = api_->pci_info(dev, &info); r != nvml_success)
    return {status_code::device_error, "nvmlDeviceGetPciInfo_v3 failed: " + api_->describe(r)};
  out.domain = info.domain;
  out.bus = info.bus;
  out.device = info.device;
  return status::ok();
}

}  // namespace bastion::kernels::device
