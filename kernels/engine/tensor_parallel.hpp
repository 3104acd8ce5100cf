#pragma once
// Tensor parallelism (Megatron-style) for the llama/qwen2 decoder: R ranks each hold a shard
// of every layer and run the same steps; two all-reduces per layer make their sum the
// unsharded result.
//   attention: rank r owns KV heads [r*Hkv/R, (r+1)*Hkv/R) and the query heads that read
//              them: rows of Wq, Wk, Wv (and their biases), and the matching columns of Wo.
//              Each rank's Wo product is a partial sum of the output: all-reduce it.
//   MLP:       rank r owns columns [r*F/R, (r+1)*F/R) of the hidden layer: rows of W_gate and
//              W_up, the matching columns of W_down; all-reduce W_down's partial output.
// Embeddings, norms and the output projection are replicated. Row shards are views of the
// original weights; column shards are copied (whole quantization blocks), kept in
// model::storage. The decoder does the all-reduces (decoder::use_collective).

#include "kernels/engine/collective.hpp"
#include "kernels/model/model.hpp"

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace bastion::kernels {

/// Rank `rank` of `ranks`' shard of `m`. invalid_argument when the model does not split:
/// n_kv_heads and ffn_dim must be multiples of `ranks`, and each rank's columns of Wo and
/// W_down whole blocks of their type. REQUIRES: `m` outlives `out` (row shards are views).
status shard_model(const model& m, int rank, int ranks, model& out);

/// Ranks that are threads of one process sharing host memory: the CPU stand-in for NCCL, for
/// tests of the sharding (one GPU cannot run two NCCL ranks). Sums in rank order, so every
/// rank gets the same bits. REQUIRES: exactly `ranks` threads, one per rank() handle.
class local_collective_group {
 public:
  explicit local_collective_group(int ranks)
      : ranks_(ranks), slots_(static_cast<std::size_t>(ranks)) {}
  /// The handle rank `rank` passes to its decoder. REQUIRES: 0 <= rank < ranks.
  collective& rank(int rank);

 private:
  class member final : public collective {
   public:
    member(local_collective_group& g, int r) : group_(g), rank_(r) {}
    int ranks() const noexcept override { return group_.ranks_; }
    int rank() const noexcept override { return rank_; }
    status all_reduce_sum(float* data, std::int64_t n) override;
    void abort() noexcept override { group_.abort(); }

   private:
    local_collective_group& group_;
    int rank_;
    std::vector<float> sum_;
  };
  /// False when the group was aborted (waiting ranks are released).
  bool barrier();
  void abort() noexcept;

  int ranks_;
  std::vector<float*> slots_;
  std::vector<std::int64_t> sizes_ = std::vector<std::int64_t>(slots_.size());
  std::vector<member> members_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int arrived_ = 0;
  std::uint64_t generation_ = 0;
  bool aborted_ = false;
};

/// A new local_collective_group of `ranks` threads as owned handles (out[r] is rank r's; the
/// group lives while any handle does): what a worker on CPU ranks keeps, and makes again after
/// an abort, as it does an NCCL group (kernels/cuda/nccl_collective.hpp's make_nccl_group).
/// Errors: ranks < 1.
status make_local_collectives(int ranks, std::vector<std::unique_ptr<collective>>& out);

}  // namespace bastion::kernels
