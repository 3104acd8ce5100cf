#pragma once
// The CUDA backend: the kernels::backend contract on one device, pointers in device memory.

#include "kernels/backend.hpp"

#include <memory>
#include <string>
#include <vector>

namespace bastion::kernels::cuda {

struct device_info {
  int ordinal = 0;
  std::string name;
  int compute_major = 0;
  int compute_minor = 0;
  std::size_t memory_bytes = 0;
};

/// Visible devices. An empty list with a status explains why (no driver, no device).
status list_devices(std::vector<device_info>& out);

/// A backend on `ordinal`, or a status saying why not.
status make_cuda_backend(int ordinal, std::unique_ptr<backend>& out);

}  // namespace bastion::kernels::cuda
