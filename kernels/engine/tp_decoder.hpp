#pragma once
// Tensor parallelism for serving: R ranks, each a decoder over its shard of the model
// (shard_model) on its own backend with its own KV cache, stepping together, each in its own
// thread (NCCL wants every rank inside its all-reduce at once; one thread stepping them in
// turn would wait on the first rank forever). The batch runner sees one step_engine.
//
// The ranks' KV caches get the same calls in the same order, so their block tables stay
// equal. Every rank computes the whole logits (the output projection is replicated); rank 0's
// are the engine's. A step that fails on some ranks is rolled back on the others (their
// sequences shrink by the step's tokens), and the collective is aborted when a failed rank
// leaves the others waiting in an all-reduce: then every later step fails, naming the rank.
// A rank stuck with no failure of its own (an all-reduce whose link died) is released the same
// way when a collective reports an asynchronous error or the step outlasts its limit (tp_watch).

#include "kernels/engine/decoder.hpp"
#include "kernels/engine/step_engine.hpp"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bastion::kernels {

/// How a group watches a step it waits for: a rank can be stuck where no failure of its own
/// will ever end it (an all-reduce whose peer lost its link), so the step is aborted when a
/// collective reports an asynchronous error, or when the step outlasts `step_timeout`.
struct tp_watch {
  std::chrono::milliseconds step_timeout{60000};  // 0: no limit
  std::chrono::milliseconds interval{100};        // how often the collectives are asked
};

class tp_decoder final : public step_engine {
 public:
  struct rank_parts {
    backend* be = nullptr;       // the rank's backend; outlives the engine
    collective* comm = nullptr;  // the rank's collective handle; outlives the engine
  };

  /// Shards `m` over `ranks.size()` ranks (rank r gets ranks[r]) and makes each rank's KV cache
  /// from `kv` (kv_dim set per shard). REQUIRES: `m` outlives the engine. Errors: a model that
  /// does not split R ways, a collective whose size or rank does not match, a KV cache or
  /// weights that do not fit a rank's backend.
  static status create(const model& m, const std::vector<rank_parts>& ranks, kv_cache_config kv,
                       std::unique_ptr<tp_decoder>& out, tp_watch watch = {});
  ~tp_decoder() override;
  tp_decoder(const tp_decoder&) = delete;
  tp_decoder& operator=(const tp_decoder&) = delete;

  int ranks() const noexcept { return static_cast<int>(ranks_.size()); }
  /// Why the engine is unusable (a rank failed and the collective was aborted); empty while it
  /// works. Only the step thread's step() changes it.
  const std::string& broken() const noexcept { return broken_; }

  const model_config& config() const noexcept override { return full_.config; }
  status step(const std::vector<step_entry>& batch, step_output& out, step_results want) override;
  backend& logits_backend() noexcept override { return *ranks_.front()->be; }
  float* backend_logits() noexcept override {
    return ranks_.front()->dec->backend_logits();
  }
  std::int64_t kv_blocks_free() const noexcept override {
    return ranks_.front()->kv->blocks_free();
  }
  std::int64_t kv_blocks_total() const noexcept override {
    return ranks_.front()->kv->blocks_total();
  }
  std::int64_t kv_blocks_for(std::int64_t tokens) const noexcept override {
    return ranks_.front()->kv->blocks_for(tokens);
  }
  status add_sequence(sequence_id id) override;
  void release_sequence(sequence_id id) override;
  std::int64_t sequence_length(sequence_id id) const override {
    return ranks_.front()->kv->length(id);
  }

 private:
  struct rank_state {
    backend* be = nullptr;
    collective* comm = nullptr;
    model shard;
    std::unique_ptr<kv_cache> kv;
    std::unique_ptr<decoder> dec;
    std::thread thread;
    step_output out;  // ranks other than 0 step into their own output
    status result;
    bool running = false;  // inside the current step (guarded by mutex_)
  };
  tp_decoder(const model& m, tp_watch watch) : full_(m), watch_(watch) {}
  void run_rank(std::size_t r);
  /// Between ranks' finishes: why the step must be aborted from outside (a collective's
  /// asynchronous error, the time limit), or empty. Called with mutex_ held.
  std::string watch(std::chrono::steady_clock::time_point started) const;
  void abort_collectives() noexcept;

  const model& full_;
  tp_watch watch_;
  std::vector<std::unique_ptr<rank_state>> ranks_;
  std::string broken_;  // why the group is unusable (a collective was aborted); empty: usable

  // The job the ranks run, and who has finished it. Guarded by mutex_.
  std::mutex mutex_;
  std::condition_variable job_posted_, rank_done_;
  std::uint64_t job_ = 0;  // generation: a rank runs each one once
  const std::vector<step_entry>* batch_ = nullptr;
  step_output* rank0_out_ = nullptr;
  step_results want_ = step_results::logits;
  std::size_t done_ = 0;
  bool stopping_ = false;
};

}  // namespace bastion::kernels
