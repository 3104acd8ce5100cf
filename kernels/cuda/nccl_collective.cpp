#include "kernels/cuda/nccl_collective.hpp"

#include "kernels/cuda/check.hpp"
#include "kernels/cuda/cuda_backend.hpp"

#include <nccl.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

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
    // Held across the check and the call: abort() frees the communicator, which must not
    // happen while this rank's thread is inside NCCL with it. The call only queues work (the
    // group connected eagerly, in make_nccl_group), so abort() waits a moment at most.
    std::lock_guard<std::mutex> lock{use_};
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
    std::lock_guard<std::mutex> lock{use_};
    if (comm_ && !aborted_.exchange(true)) (void)ncclCommAbort(comm_);
  }

  bool capturable() const noexcept override { return true; }

  status async_error() noexcept override {
    std::lock_guard<std::mutex> lock{use_};
    if (!comm_ || aborted_.load()) return status::ok();  // aborted: its error is known
    ncclResult_t found = ncclSuccess;
    if (const ncclResult_t asked = ncclCommGetAsyncError(comm_, &found); asked != ncclSuccess)
      found = asked;
    if (found == ncclSuccess || found == ncclInProgress) return status::ok();
    return {status_code::device_error, std::string{"NCCL rank "} + std::to_string(rank_) +
                                           " reports an asynchronous error: " +
                                           ncclGetErrorString(found)};
  }

 private:
  int rank_, ranks_;
  cudaStream_t stream_;
  ncclComm_t comm_ = nullptr;
  std::mutex use_;  // the communicator: one thread inside NCCL with it at a time
  std::atomic<bool> aborted_{false};
};

// NCCL connects the ranks lazily, inside a rank's first collective, which then blocks that
// rank's thread until its peers arrive. A rank failing before its first all-reduce would
// leave another blocked inside NCCL, holding its handle (all_reduce_sum), so abort() could
// never get in. One all-reduce of one float on every rank, from this one thread in one NCCL
// group, makes the connections before any rank steps.
status connect_now(const std::vector<ncclComm_t>& comms, const std::vector<int>& devices,
                   const std::vector<cudaStream_t>& streams) {
  std::vector<float*> scratch(comms.size(), nullptr);
  auto free_scratch = [&] {
    for (std::size_t r = 0; r < scratch.size(); ++r)
      if (scratch[r] && cudaSetDevice(devices[r]) == cudaSuccess) (void)cudaFree(scratch[r]);
  };
  status st = status::ok();
  for (std::size_t r = 0; st && r < comms.size(); ++r) {
    if (cudaSetDevice(devices[r]) != cudaSuccess ||
        cudaMalloc(reinterpret_cast<void**>(&scratch[r]), sizeof(float)) != cudaSuccess ||
        cudaMemsetAsync(scratch[r], 0, sizeof(float), streams[r]) != cudaSuccess)
      st = {status_code::device_error,
            "make_nccl_group: scratch on cuda:" + std::to_string(devices[r]) + ": " +
                cudaGetErrorString(cudaGetLastError())};
  }
  auto connect = [&]() -> status {
    BASTION_NCCL_CHECK(ncclGroupStart());
    for (std::size_t r = 0; r < comms.size(); ++r)
      if (ncclResult_t e = ncclAllReduce(scratch[r], scratch[r], 1, ncclFloat, ncclSum, comms[r],
                                         streams[r]);
          e != ncclSuccess) {
        (void)ncclGroupEnd();
        return {status_code::device_error,
                std::string{"make_nccl_group: the first all-reduce: "} + ncclGetErrorString(e)};
      }
    BASTION_NCCL_CHECK(ncclGroupEnd());
    for (std::size_t r = 0; r < comms.size(); ++r) {
      BASTION_CUDA_CHECK(cudaSetDevice(devices[r]));
      BASTION_CUDA_CHECK(cudaStreamSynchronize(streams[r]));
    }
    return status::ok();
  };
  if (st) st = connect();
  free_scratch();
  return st;
}

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
  std::vector<std::unique_ptr<collective>> made;
  for (int r = 0; r < ranks; ++r) {
    auto c = std::make_unique<nccl_collective>(r, ranks, streams[static_cast<std::size_t>(r)]);
    c->adopt(comms[static_cast<std::size_t>(r)]);  // destroyed with `c` if what follows fails
    made.push_back(std::move(c));
  }
  if (auto s = connect_now(comms, devices, streams); !s) return s;
  out = std::move(made);
  return status::ok();
}

}  // namespace bastion::kernels::cuda
