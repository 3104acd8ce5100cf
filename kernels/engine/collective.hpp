#pragma once
// The one collective operation tensor parallelism needs: an all-reduce (sum) across the ranks
// that each hold a shard of a model (tensor_parallel.hpp). NCCL implements it across the GPUs
// of a node (kernels/cuda/nccl_collective.hpp); threads implement it for tests on the CPU.

#include "kernels/status.hpp"

#include <cstdint>

namespace bastion::kernels {

class collective {
 public:
  virtual ~collective() = default;
  virtual int ranks() const noexcept = 0;
  virtual int rank() const noexcept = 0;
  /// In place: `data` ([n] floats in the rank's backend memory) becomes the elementwise sum of
  /// every rank's `data`. Every rank calls it, with the same n, in the same order.
  virtual status all_reduce_sum(float* data, std::int64_t n) = 0;
  /// A rank failed and will not arrive: every all_reduce_sum waiting or still to come ends with
  /// an error instead of waiting for it forever. The owner of the ranks calls it on every
  /// rank's handle, from any thread (NCCL aborts per communicator; the thread group ends all at
  /// once). The group stays unusable: make a new one.
  virtual void abort() noexcept = 0;
  /// An error the collective met on its own, outside any call: NCCL finds a failed link or
  /// peer asynchronously (ncclCommGetAsyncError), and a rank whose stream waits on it does not
  /// return until the collective is aborted. Polled, from another thread, while a step waits.
  /// OK when there is none (the default: the thread group has none).
  virtual status async_error() noexcept { return status::ok(); }
  /// Whether all_reduce_sum can be recorded into a device backend's replay
  /// (backend::run_recorded): NCCL's can (it queues kernels on the rank's stream, which CUDA
  /// graphs capture); the thread group's cannot (it waits on the host). A replay holds the
  /// collective: the decoders that recorded it drop their backend's recordings when they go.
  virtual bool capturable() const noexcept { return false; }
};

}  // namespace bastion::kernels
