#include "actors/worker/worker_backend.hpp"

#ifdef BASTION_USE_CUDA
#include "kernels/cuda/cuda_backend.hpp"
#endif
#ifdef BASTION_HAVE_NCCL
#include "kernels/cuda/nccl_collective.hpp"
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
  const std::vector<int> devices =
      w.devices.empty() ? std::vector<int>{std::max(0, w.device)} : w.devices;
  out.name = "cuda:";
  for (std::size_t i = 0; i < devices.size(); ++i)
    out.name += (i ? "+" : "") + std::to_string(devices[i]);
#ifdef BASTION_USE_CUDA
  auto fail = [&](const std::string& why) {
    out.backend.reset();
    out.other_ranks.clear();
    out.collectives.clear();
    out.make_collectives = nullptr;
    out.error = "worker '" + w.id + "': " + why;
    return std::move(out);
  };
  std::vector<kernels::backend*> ranks;
  for (std::size_t i = 0; i < devices.size(); ++i) {
    std::unique_ptr<kernels::backend> be;
    if (auto st = kernels::cuda::make_cuda_backend(devices[i], be); !st) return fail(st.message());
    ranks.push_back(be.get());
    (i == 0 ? out.backend : out.other_ranks.emplace_back()) = std::move(be);
  }
  if (devices.size() > 1) {
#ifdef BASTION_HAVE_NCCL
    out.make_collectives = [](const std::vector<kernels::backend*>& backends,
                              std::vector<std::unique_ptr<kernels::collective>>& handles) {
      return kernels::cuda::make_nccl_group(backends, handles);
    };
    if (auto st = out.make_collectives(ranks, out.collectives); !st)
      return fail("NCCL across " + out.name + ": " + st.message());
#else
    return fail("a worker on several devices needs NCCL, which this build lacks");
#endif
  }
#else
  out.error = "this build has no CUDA backend";
#endif
  return out;
}

}  // namespace bastion::worker
