#pragma once
// The CUDA backend: the kernels::backend contract on one device. Every pointer an operation
// takes is device memory (backend::allocate / upload). Operations are queued on the backend's
// stream and return once launched; download() and synchronize() wait and report failures that
// happened meanwhile, including out-of-range entries the kernels met in device-resident tables
// (token ids, slots, block tables), which the host cannot check without reading them back.

#include "kernels/backend.hpp"
#include "kernels/device/device_info.hpp"

#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <vector>

namespace bastion::kernels::cuda {

using device_info = device::device_info;

/// Visible devices, by ordinal. An empty list with a status explains why (no driver, no device).
status list_devices(std::vector<device_info>& out);

/// Health of one device for the worker and metrics: memory in use, and whether a small
/// allocation, memset and copy back complete. The health actor probes every visible device each
/// node.device_sample_ms (bastion_gpu_responsive). Temperature, power and utilisation come from
/// NVML instead (kernels/device/nvml_reader.hpp, loaded at run time, no nvml.h needed).
/// Blocks until the device answers: cudaFree waits for the device's queued work.
struct device_health {
  int ordinal = 0;
  std::size_t memory_free_bytes = 0;
  std::size_t memory_total_bytes = 0;
  bool responsive = false;  // a memset round trip on the device succeeded
};
status probe_device(int ordinal, device_health& out);

/// A backend on `ordinal`, or a status saying why not.
status make_cuda_backend(int ordinal, std::unique_ptr<backend>& out);

/// The stream a CUDA backend queues its work on (for NCCL, which must order with it);
/// invalid_argument when `be` is not a CUDA backend.
status stream_of(backend& be, cudaStream_t& out);

/// The device a CUDA backend runs on; invalid_argument when `be` is not a CUDA backend.
status ordinal_of(backend& be, int& out);

}  // namespace bastion::kernels::cuda
