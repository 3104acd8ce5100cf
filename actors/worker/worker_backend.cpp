#include "actors/worker/worker_backend.hpp"

#ifdef BASTION_USE_CUDA
#include "kernels/cuda/cuda_backend.hpp"
#endif

#include <algorithm>

namespace bastion::worker {

kernels::status cpu_options_for(const config::worker_section& w,
                                kernels::cpu_backend_options& out) {
  if (auto st = kernels::cpu_backend_options::from_environment(out); !st) return st;
  if (w.threads != 0) out.threads = static_cast<int>(w.threads);
  return kernels::status::ok();
}

worker_backend make_worker_backend(const config::worker_section& w) {
  worker_backend out;
  if (w.kind != "gpu") {
    out.name = "cpu";
    kernels::cpu_backend_options options;
    auto st = cpu_options_for(w, options);
    if (st) st = kernels::make_cpu_backend(options, out.backend);
    if (!st) {
      out.backend.reset();
      out.error = "worker '" + w.id + "': " + st.message();
      return out;
    }
    out.threads = options.threads;
    return out;
  }
  out.name = "cuda:" + std::to_string(std::max(0, w.device));
#ifdef BASTION_USE_CUDA
  if (auto st = kernels::cuda::make_cuda_backend(std::max(0, w.device), out.backend); !st) {
    out.backend.reset();
    out.error = st.message();
  }
#else
  out.error = "this build has no CUDA backend";
#endif
  return out;
}

}  // namespace bastion::worker
