#include "kernels/engine/kv_cache.hpp"

#include <cassert>
#include <limits>
#include <string>

namespace bastion::kernels {

status kv_cache::create(const kv_cache_config& c, std::unique_ptr<kv_cache>& out,
                        std::uint64_t bytes_max) {
  return create_in(c, nullptr, out, bytes_max);
}

status kv_cache::create(const kv_cache_config& c, backend& be, std::unique_ptr<kv_cache>& out,
                        std::uint64_t bytes_max) {
  return create_in(c, &be, out, bytes_max);
}

status kv_cache::create_in(const kv_cache_config& c, backend* be, std::unique_ptr<kv_cache>& out,
                           std::uint64_t bytes_max) {
  if (c.n_layers <= 0 || c.kv_dim <= 0 || c.block_tokens <= 0 || c.blocks <= 0 ||
      c.sequences_max <= 0)
    return {status_code::invalid_argument,
            "kv_cache: layers, kv_dim, block_tokens, blocks and sequences_max must be positive"};
  if (c.blocks * c.block_tokens > std::numeric_limits<std::int32_t>::max())
    return {status_code::invalid_argument, "kv_cache: more token slots than an int32 addresses"};
  // K and V, every layer, every slot, F32. Checked in long double to avoid overflow.
  const long double bytes =
      2.0L * static_cast<long double>(c.n_layers) * static_cast<long double>(c.blocks) *
      static_cast<long double>(c.block_tokens) * static_cast<long double>(c.kv_dim) * sizeof(float);
  if (bytes > static_cast<long double>(bytes_max))
    return {status_code::out_of_memory, "kv_cache: " + std::to_string(static_cast<double>(bytes)) +
                                            " bytes exceed the limit of " +
                                            std::to_string(bytes_max)};
  std::unique_ptr<kv_cache> kv{new kv_cache(c)};
  const auto floats = static_cast<std::size_t>(c.n_layers * c.blocks * c.block_tokens * c.kv_dim);
  if (auto s = backend_buffer::make(be, floats * sizeof(float), kv->keys_); !s) return s;
  if (auto s = backend_buffer::make(be, floats * sizeof(float), kv->values_); !s) return s;
  kv->free_.reserve(static_cast<std::size_t>(c.blocks));
  // Pushed in reverse so that block 0 is handed out first (easier to read in a debugger).
  for (std::int64_t b = c.blocks - 1; b >= 0; --b)
    kv->free_.push_back(static_cast<std::int32_t>(b));
  out = std::move(kv);
  return status::ok();
}

status kv_cache::add_sequence(sequence_id id) {
  if (seqs_.count(id))
    return {status_code::invalid_argument, "kv_cache: sequence " + std::to_string(id) + " exists"};
  if (sequences() >= config_.sequences_max)
    return {status_code::resource_exhausted,
            "kv_cache: " + std::to_string(config_.sequences_max) + " sequences already live"};
  seqs_.emplace(id, sequence{});
  return status::ok();
}

status kv_cache::extend(sequence_id id, std::int64_t n_tokens, std::int64_t& first_position) {
  auto it = seqs_.find(id);
  if (it == seqs_.end())
    return {status_code::invalid_argument, "kv_cache: unknown sequence " + std::to_string(id)};
  if (n_tokens < 0) return {status_code::invalid_argument, "kv_cache: negative token count"};
  sequence& s = it->second;
  const std::int64_t need =
      blocks_for(s.length + n_tokens) - static_cast<std::int64_t>(s.blocks.size());
  if (need > blocks_free())
    return {status_code::resource_exhausted, "kv_cache: sequence " + std::to_string(id) +
                                                 " needs " + std::to_string(need) +
                                                 " more blocks, " + std::to_string(blocks_free()) +
                                                 " free of " + std::to_string(blocks_total())};
  for (std::int64_t i = 0; i < need; ++i) {
    s.blocks.push_back(free_.back());
    free_.pop_back();
  }
  first_position = s.length;
  s.length += n_tokens;
  return status::ok();
}

status kv_cache::shrink(sequence_id id, std::int64_t n_tokens) {
  auto it = seqs_.find(id);
  if (it == seqs_.end())
    return {status_code::invalid_argument, "kv_cache: unknown sequence " + std::to_string(id)};
  sequence& s = it->second;
  if (n_tokens < 0 || n_tokens > s.length)
    return {status_code::invalid_argument, "kv_cache: cannot drop " + std::to_string(n_tokens) +
                                               " of " + std::to_string(s.length) + " tokens"};
  s.length -= n_tokens;
  while (static_cast<std::int64_t>(s.blocks.size()) > blocks_for(s.length)) {
    free_.push_back(s.blocks.back());
    s.blocks.pop_back();
  }
  return status::ok();
}

void kv_cache::release(sequence_id id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  for (auto b : it->second.blocks) free_.push_back(b);
  seqs_.erase(it);
}

std::int64_t kv_cache::length(sequence_id id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? 0 : it->second.length;
}

const std::vector<std::int32_t>* kv_cache::block_table(sequence_id id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? nullptr : &it->second.blocks;
}

std::int32_t kv_cache::slot(sequence_id id, std::int64_t pos) const {
  const auto& s = seqs_.at(id);
  assert(pos >= 0 && pos < s.length && "kv_cache::slot: position outside the sequence");
  return static_cast<std::int32_t>(s.blocks[static_cast<std::size_t>(pos / config_.block_tokens)] *
                                       config_.block_tokens +
                                   pos % config_.block_tokens);
}

paged_kv_view kv_cache::layer_view(std::int64_t layer) {
  assert(layer >= 0 && layer < config_.n_layers && "kv_cache::layer_view: no such layer");
  const std::int64_t per_layer = config_.blocks * config_.block_tokens * config_.kv_dim;
  return {keys_.as<float>() + layer * per_layer, values_.as<float>() + layer * per_layer,
          config_.blocks, config_.block_tokens, config_.kv_dim};
}

}  // namespace bastion::kernels
