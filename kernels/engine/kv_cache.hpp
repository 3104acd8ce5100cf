#pragma once
// The paged KV cache: keys and values of every layer in fixed-size blocks of `block_tokens`
// token slots, taken from a bounded pool. A sequence owns a list of blocks (its block table) in
// position order; growing a sequence takes blocks from the free list, releasing it returns
// them. Nothing is allocated after construction, so a full cache is a status, never an OOM.
//
// The storage is the memory of the backend given to create (device memory for a device
// backend), or host memory without one. REQUIRES: used by one thread at a time.

#include "kernels/backend.hpp"
#include "kernels/engine/backend_buffer.hpp"
#include "kernels/status.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

namespace bastion::kernels {

using sequence_id = std::uint64_t;

struct kv_cache_config {
  std::int64_t n_layers = 0;
  std::int64_t kv_dim = 0;           // n_kv_heads * head_dim
  std::int64_t block_tokens = 16;    // token slots per block
  std::int64_t blocks = 0;           // pool size; bounds the tokens held by all sequences
  std::int64_t sequences_max = 256;  // bound on live sequences
};

class kv_cache {
 public:
  /// Allocates the pool. Refuses shapes that are not positive or would exceed bytes_max.
  static status create(const kv_cache_config& config, std::unique_ptr<kv_cache>& out,
                       std::uint64_t bytes_max = std::uint64_t{64} << 30);
  /// The same, with the storage in `be`'s memory (zeroed), so a device backend's kernels can
  /// read and write it. REQUIRES: `be` outlives the cache.
  static status create(const kv_cache_config& config, backend& be, std::unique_ptr<kv_cache>& out,
                       std::uint64_t bytes_max = std::uint64_t{64} << 30);

  const kv_cache_config& config() const noexcept { return config_; }

  /// Starts an empty sequence. invalid_argument if `id` is live; resource_exhausted at
  /// sequences_max.
  status add_sequence(sequence_id id);
  /// Appends `n_tokens` slots to `id`: takes the blocks it needs, all or none. On success
  /// `first_position` is the position of the first new token. resource_exhausted when the pool
  /// lacks blocks (the sequence is unchanged); invalid_argument for an unknown id.
  status extend(sequence_id id, std::int64_t n_tokens, std::int64_t& first_position);
  /// Drops the last `n_tokens` slots of `id` (an aborted step), returning emptied blocks.
  status shrink(sequence_id id, std::int64_t n_tokens);
  /// Returns every block of `id` to the pool and forgets it. Unknown ids are ignored.
  void release(sequence_id id);

  bool has_sequence(sequence_id id) const { return seqs_.count(id) != 0; }
  /// Tokens held by `id`; 0 for an unknown id.
  std::int64_t length(sequence_id id) const;
  /// The blocks of `id` in position order; nullptr for an unknown id.
  const std::vector<std::int32_t>* block_table(sequence_id id) const;
  /// The slot of position `pos` of `id`. REQUIRES: 0 <= pos < length(id).
  std::int32_t slot(sequence_id id, std::int64_t pos) const;

  std::int64_t blocks_total() const noexcept { return config_.blocks; }
  std::int64_t blocks_free() const noexcept { return static_cast<std::int64_t>(free_.size()); }
  std::int64_t blocks_used() const noexcept { return blocks_total() - blocks_free(); }
  std::int64_t sequences() const noexcept { return static_cast<std::int64_t>(seqs_.size()); }
  /// Blocks needed to hold `n_tokens` tokens.
  std::int64_t blocks_for(std::int64_t n_tokens) const noexcept {
    return (n_tokens + config_.block_tokens - 1) / config_.block_tokens;
  }

  /// The storage of `layer` for the backend. REQUIRES: 0 <= layer < n_layers.
  paged_kv_view layer_view(std::int64_t layer);
  /// The backend whose memory holds the storage; null for host memory.
  backend* storage_backend() const noexcept { return keys_.owner(); }

 private:
  struct sequence {
    std::int64_t length = 0;
    std::vector<std::int32_t> blocks;
  };
  explicit kv_cache(const kv_cache_config& config) : config_(config) {}
  static status create_in(const kv_cache_config& config, backend* be,
                          std::unique_ptr<kv_cache>& out, std::uint64_t bytes_max);

  kv_cache_config config_;
  backend_buffer keys_;             // [layer][slot][kv_dim] floats
  backend_buffer values_;           // same layout
  std::vector<std::int32_t> free_;  // free block ids, used as a stack
  std::map<sequence_id, sequence> seqs_;
};

}  // namespace bastion::kernels
