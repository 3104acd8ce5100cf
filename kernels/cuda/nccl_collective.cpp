#include "kernels/cuda/nccl_collective.hpp"

#include "kernels/cuda/check.hpp"
#include "kernels/cuda/cuda_backend.hpp"

#include <nccl.h>

#include <atomic>
#include <cstring>
#include <string>

#define BASTION_NCCL_CHECK(call)                                                                 \
  do {                                                                                           \
    ncclResult_t bastion_nccl_ = (call);                                                         \
    if (bastion_nccl_ != ncclSuccess)                                                            \
      return ::bastion::kernels::status{::bastion::kernels::status_code::device_error,           \
                                        std::string{#call} +                                     \
                                            " failed: " + ncclGetErrorString(bastion_nccl_) +    \
                                            " at " + __FILE__ + ":" + std::to_string(__LINE__)}; \
  } while (0)

namespace bastion::kernels::cuda {
namespace {

static_assert(sizeof(ncclUniqueId) == sizeof(nccl_id), "NCCL's unique id changed size");

class nccl_collective final : public collective {
 public:
  nccl_collective(int rank, int ranks, cudaStream_t stream)
      : rank_(rank), ranks_(ranks), stream_(stream) {}
  nccl_collective(const nccl_collective&) = delete;
  nccl_collective& operator=(const nccl_collective&) = delete;
  ~nccl_collective() override {
    // Teardown: nothing to do about a failure. An aborted communicator is already freed.
    if (comm_ && !aborted_.load()) (void)ncclCommDestroy(comm_);
  }

  /// Takes a communicator ncclCommInitAll made.
  void adopt(ncclComm_t comm) noexcept { comm_ = comm; }

  status init(const nccl_id& id) {
    ncclUniqueId uid;
    std::memcpy(&uid, id.data(), sizeof uid);
    BASTION_NCCL_CHECK(ncclCommInitRank(&comm_, ranks_, uid, rank_));
    return status::ok();
  }

  int ranks() const noexcept override { return ranks_; }
  int rank() const noexcept override { return rank_; }

  status all_reduce_sum(float* data, std::int64_t n) override {
    if (n < 0 || (n > 0 && !data))
      return {status_code::invalid_argument, "all_reduce_sum: bad buffer"};
    if (aborted_.load())
      return {status_code::device_error, "all_reduce_sum: the communicator was aborted"};
    BASTION_NCCL_CHECK(
        ncclAllReduce(data, data, static_cast<std::size_t>(n), ncclFloat, ncclSum, comm_, stream_));
    return status::ok();
  }

  // ncclCommAbort ends this rank's queued and running NCCL kernels, so a stream (and the
  // host waiting on it) stuck on a peer that will never arrive is released. Each rank's
  // owner aborts its own handle; the communicators cannot be reused afterwards.
  void abort() noexcept override {
    if (comm_ && !aborted_.exchange(true)) (void)ncclCommAbort(comm_);
  }

 private:
  int rank_, ranks_;
  cudaStream_t stream_;
  ncclComm_t comm_ = nullptr;
  std::atomic<bool> aborted_{false};
};

}  // namespace

status make_nccl_id(nccl_id& out) {
  ncclUniqueId uid;
  BASTION_NCCL_CHECK(ncclGetUniqueId(&uid));
  std::memcpy(out.data(), &uid, sizeof uid);
  return status::ok();
}

status make_nccl_collective(backend& be, int rank, int ranks, const nccl_id& id,
                            std::unique_ptr<collective>& out) {
  if (ranks <= 0 || rank < 0 || rank >= ranks)
    return {status_code::invalid_argument, "make_nccl_collective: rank outside [0, ranks)"};
  cudaStream_t stream = nullptr;
  if (auto s = stream_of(be, stream); !s) return s;
  auto c = std::make_unique<nccl_collective>(rank, ranks, stream);
  if (auto s = c->init(id); !s) return s;
  out = std::move(c);
  return status::ok();
}

status make_nccl_group(const std::vector<backend*>& backends,
                       std::vector<std::unique_ptr<collective>>& out) {
  const auto ranks = static_cast<int>(backends.size());
  if (ranks < 1) return {status_code::invalid_argument, "make_nccl_group: no backends"};
  std::vector<int> devices(backends.size());
  std::vector<cudaStream_t> streams(backends.size());
  for (std::size_t r = 0; r < backends.size(); ++r) {
    if (!backends[r]) return {status_code::invalid_argument, "make_nccl_group: a null backend"};
    if (auto s = ordinal_of(*backends[r], devices[r]); !s) return s;
    if (auto s = stream_of(*backends[r], streams[r]); !s) return s;
    for (std::size_t q = 0; q < r; ++q)
      if (devices[q] == devices[r])
        return {status_code::invalid_argument,
                "make_nccl_group: ranks " + std::to_string(q) + " and " + std::to_string(r) +
                    " are both on cuda:" + std::to_string(devices[r]) +
                    " (NCCL needs one device per rank)"};
  }
  std::vector<ncclComm_t> comms(backends.size(), nullptr);
  BASTION_NCCL_CHECK(ncclCommInitAll(comms.data(), ranks, devices.data()));
  out.clear();
  for (int r = 0; r < ranks; ++r) {
    auto c = std::make_unique<nccl_collective>(r, ranks, streams[static_cast<std::size_t>(r)]);
    c->adopt(comms[static_cast<std::size_t>(r)]);
    out.push_back(std::move(c));
  }
  return status::ok();
}

}  // namespace bastion::kernels::cuda
