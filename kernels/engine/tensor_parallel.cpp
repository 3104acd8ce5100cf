#include "kernels/engine/tensor_parallel.hpp"

#include <cassert>
#include <cstring>
#include <memory>
#include <string>

namespace bastion::kernels {
namespace {

status refuse(const std::string& why) {
  return {status_code::invalid_argument, "shard_model: " + why};
}

std::uint64_t bytes_of(tensor_type t, std::int64_t n) {
  return *row_bytes(t, static_cast<std::uint64_t>(n));
}

// Rows [r0, r0 + n) of `w`: a view, no copy.
weight_view row_shard(const weight_view& w, std::int64_t r0, std::int64_t n) {
  weight_view v = w;
  v.data = static_cast<const std::uint8_t*>(w.data) +
           static_cast<std::uint64_t>(r0) * bytes_of(w.type, w.cols);
  v.rows = n;
  return v;
}

std::vector<float> slice(const std::vector<float>& v, std::int64_t at, std::int64_t n) {
  if (v.empty()) return {};
  return {v.begin() + at, v.begin() + at + n};
}

}  // namespace

status shard_model(const model& m, int rank, int ranks, model& out) {
  const auto& c = m.config;
  if (ranks <= 0 || rank < 0 || rank >= ranks) return refuse("rank outside [0, ranks)");
  if (c.n_kv_heads % ranks != 0)
    return refuse(std::to_string(c.n_kv_heads) + " KV heads do not split over " +
                  std::to_string(ranks) + " ranks");
  if (c.ffn_dim % ranks != 0)
    return refuse("ffn_dim " + std::to_string(c.ffn_dim) + " does not split over " +
                  std::to_string(ranks) + " ranks");
  const std::int64_t kv_heads = c.n_kv_heads / ranks, heads = c.n_heads / ranks;
  const std::int64_t q_cols = heads * c.head_dim, kv_rows = kv_heads * c.head_dim,
                     ffn = c.ffn_dim / ranks;
  model s;
  s.config = c;
  s.config.n_heads = heads;
  s.config.n_kv_heads = kv_heads;
  s.config.ffn_dim = ffn;
  s.end_of_generation_ids = m.end_of_generation_ids;
  s.token_texts = m.token_texts;
  s.source = m.source + " (tensor-parallel rank " + std::to_string(rank) + " of " +
             std::to_string(ranks) + ")";
  s.storage = m.storage;
  s.weights.token_embd = m.weights.token_embd;
  s.weights.output = m.weights.output;
  s.weights.output_norm = m.weights.output_norm;

  // Columns [c0, c0 + n) of every row, copied: whole blocks of the type.
  auto column_shard = [&](const weight_view& w, std::int64_t c0, std::int64_t n,
                          weight_view& to) -> status {
    const auto tr = traits_of(static_cast<std::uint32_t>(w.type));
    if (!tr || c0 % tr->block_elems != 0 || n % tr->block_elems != 0)
      return refuse("a shard of " + std::to_string(n) + " columns is not whole " +
                    std::string{tr ? tr->name : "?"} + " blocks");
    const std::uint64_t src_row = bytes_of(w.type, w.cols), dst_row = bytes_of(w.type, n),
                        skip = bytes_of(w.type, c0);
    auto bytes =
        std::make_shared<std::vector<std::uint8_t>>(dst_row * static_cast<std::uint64_t>(w.rows));
    const auto* src = static_cast<const std::uint8_t*>(w.data);
    for (std::int64_t r = 0; r < w.rows; ++r)
      std::memcpy(bytes->data() + static_cast<std::uint64_t>(r) * dst_row,
                  src + static_cast<std::uint64_t>(r) * src_row + skip, dst_row);
    to = {w.type, bytes->data(), w.rows, n};
    s.storage.push_back(std::shared_ptr<const void>(bytes, bytes->data()));
    return status::ok();
  };

  for (const auto& L : m.weights.layers) {
    layer_weights d;
    d.attn_norm = L.attn_norm;
    d.ffn_norm = L.ffn_norm;
    // Query heads h read KV head h / group, so rank r's query heads are a contiguous range too.
    d.wq = row_shard(L.wq, rank * q_cols, q_cols);
    d.wk = row_shard(L.wk, rank * kv_rows, kv_rows);
    d.wv = row_shard(L.wv, rank * kv_rows, kv_rows);
    d.bq = slice(L.bq, rank * q_cols, q_cols);
    d.bk = slice(L.bk, rank * kv_rows, kv_rows);
    d.bv = slice(L.bv, rank * kv_rows, kv_rows);
    if (auto st = column_shard(L.wo, rank * q_cols, q_cols, d.wo); !st) return st;
    d.w_gate = row_shard(L.w_gate, rank * ffn, ffn);
    d.w_up = row_shard(L.w_up, rank * ffn, ffn);
    if (auto st = column_shard(L.w_down, rank * ffn, ffn, d.w_down); !st) return st;
    s.weights.layers.push_back(std::move(d));
  }
  out = std::move(s);
  return status::ok();
}

collective& local_collective_group::rank(int r) {
  assert(r >= 0 && r < ranks_ && "local_collective_group::rank: no such rank");
  if (members_.empty()) {
    members_.reserve(static_cast<std::size_t>(ranks_));
    for (int i = 0; i < ranks_; ++i) members_.emplace_back(*this, i);
  }
  return members_[static_cast<std::size_t>(r)];
}

bool local_collective_group::barrier() {
  std::unique_lock<std::mutex> lock{mutex_};
  if (aborted_) return false;
  const std::uint64_t gen = generation_;
  if (++arrived_ == ranks_) {
    arrived_ = 0;
    ++generation_;
    cv_.notify_all();
  } else {
    cv_.wait(lock, [&] { return generation_ != gen || aborted_; });
  }
  return !aborted_;
}

void local_collective_group::abort() noexcept {
  std::lock_guard<std::mutex> lock{mutex_};
  aborted_ = true;
  cv_.notify_all();
}

status local_collective_group::member::all_reduce_sum(float* data, std::int64_t n) {
  auto& g = group_;
  const status aborted{status_code::device_error,
                       "all_reduce_sum: the group was aborted (another rank failed)"};
  {
    std::lock_guard<std::mutex> lock{g.mutex_};
    g.slots_[static_cast<std::size_t>(rank_)] = data;
    g.sizes_[static_cast<std::size_t>(rank_)] = n;
  }
  if (!g.barrier()) return aborted;  // every rank's buffer is published
  for (auto size : g.sizes_)
    if (size != n) {
      g.barrier();
      return {status_code::invalid_argument, "all_reduce_sum: ranks passed different sizes"};
    }
  sum_.assign(static_cast<std::size_t>(n), 0.0f);
  for (int r = 0; r < g.ranks_; ++r) {
    const float* src = g.slots_[static_cast<std::size_t>(r)];
    for (std::int64_t i = 0; i < n; ++i) sum_[static_cast<std::size_t>(i)] += src[i];
  }
  if (!g.barrier()) return aborted;  // every rank has read every buffer
  std::memcpy(data, sum_.data(), static_cast<std::size_t>(n) * sizeof(float));
  return status::ok();
}

namespace {

// A rank's handle that keeps its group alive.
class owned_rank final : public collective {
 public:
  owned_rank(std::shared_ptr<local_collective_group> group, int r)
      : group_(std::move(group)), member_(group_->rank(r)) {}
  int ranks() const noexcept override { return member_.ranks(); }
  int rank() const noexcept override { return member_.rank(); }
  status all_reduce_sum(float* data, std::int64_t n) override {
    return member_.all_reduce_sum(data, n);
  }
  void abort() noexcept override { member_.abort(); }

 private:
  std::shared_ptr<local_collective_group> group_;
  collective& member_;
};

}  // namespace

status make_local_collectives(int ranks, std::vector<std::unique_ptr<collective>>& out) {
  if (ranks < 1) return {status_code::invalid_argument, "make_local_collectives: no ranks"};
  auto group = std::make_shared<local_collective_group>(ranks);
  std::vector<std::unique_ptr<collective>> handles;
  for (int r = 0; r < ranks; ++r) handles.push_back(std::make_unique<owned_rank>(group, r));
  out = std::move(handles);
  return status::ok();
}

}  // namespace bastion::kernels
