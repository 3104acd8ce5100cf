#pragma once
// What the batch runner steps: one decoder on one backend, or the ranks of a tensor-parallel
// group stepping together (tp_decoder.hpp). Sequences live in the engine's KV cache (every
// rank's, kept in step); the logits of a step are the engine's to give back.

#include "kernels/backend.hpp"
#include "kernels/engine/kv_cache.hpp"
#include "kernels/model/model_config.hpp"
#include "kernels/status.hpp"

#include <cstdint>
#include <vector>

namespace bastion::kernels {

struct step_entry;
struct step_output;
enum class step_results;

class step_engine {
 public:
  virtual ~step_engine() = default;

  virtual const model_config& config() const noexcept = 0;

  /// One step over `batch` (decoder::step's contract: all or nothing).
  virtual status step(const std::vector<step_entry>& batch, step_output& out,
                      step_results want) = 0;

  /// The backend that holds the latest step's logits, and where (null on a host backend,
  /// whose logits are in step_output): what sampling on the device reads. They are the step's
  /// scratch until the next step, so the caller may rewrite them in place (the repetition
  /// penalty, before its picks).
  virtual backend& logits_backend() noexcept = 0;
  virtual float* backend_logits() noexcept = 0;

  // Sequences in the KV cache (kv_cache's contracts).
  virtual std::int64_t kv_blocks_free() const noexcept = 0;
  virtual std::int64_t kv_blocks_total() const noexcept = 0;
  virtual std::int64_t kv_blocks_for(std::int64_t tokens) const noexcept = 0;
  virtual status add_sequence(sequence_id id) = 0;
  virtual void release_sequence(sequence_id id) = 0;
  virtual std::int64_t sequence_length(sequence_id id) const = 0;
};

}  // namespace bastion::kernels
