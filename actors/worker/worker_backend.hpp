#pragma once
// The backend a worker runs its model steps on, as its config section asks (DESIGN.md §3):
// CPU and edge workers get the CPU backend with the worker's `threads` compute threads, GPU
// workers their CUDA device. Kept apart from local_serving so that what a worker's settings
// turn into can be checked without starting a node.

#include "kernels/backend.hpp"
#include "kernels/cpu/cpu_backend.hpp"
#include "kernels/engine/collective.hpp"
#include "runtime/config/node_config.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace bastion::worker {

/// Makes a tensor-parallel group's collective handles over its ranks' backends (out[r] is rank
/// r's): at start, and again after an abort left the old ones unusable.
using collective_factory = std::function<kernels::status(
    const std::vector<kernels::backend*>& ranks,
    std::vector<std::unique_ptr<kernels::collective>>& out)>;

struct worker_backend {
  std::unique_ptr<kernels::backend> backend;  // null when there is none; `error` says why
  /// A tensor-parallel worker (a gpu worker with several devices): `backend` is rank 0, these
  /// are ranks 1.., and collectives[r] is rank r's handle. Both empty for one device.
  std::vector<std::unique_ptr<kernels::backend>> other_ranks;
  std::vector<std::unique_ptr<kernels::collective>> collectives;
  /// How `collectives` were made, so that a group whose collective was aborted (a rank failed
  /// mid-step) can be made again once every device passes its probe. Empty: the group cannot
  /// be rebuilt, and such a worker stays unhealthy until the node restarts.
  collective_factory make_collectives;
  std::string name;  // "cpu", "cuda:0", "cuda:0+1" (the devices it uses), ...
  std::string error;
  int threads = 0;  // a CPU backend's compute threads as configured (0: one per core); GPU: 0
};

/// The CPU backend options for worker `w`: the environment's choices (BASTION_CPU_KERNELS,
/// BASTION_CPU_NUMERICS, BASTION_CPU_THREADS), with the worker's `threads` taking precedence
/// over BASTION_CPU_THREADS when it is not 0. Fails when the environment holds a bad value.
kernels::status cpu_options_for(const config::worker_section& w, kernels::cpu_backend_options& out);

/// Builds the backend of worker `w`: a gpu worker with several devices gets one CUDA backend
/// per device and an NCCL group across them. Never throws; a backend that cannot be made (bad
/// environment, no CUDA or NCCL in this build, no device) comes back null with the reason.
worker_backend make_worker_backend(const config::worker_section& w);

}  // namespace bastion::worker
