#include "kernels/engine/decoder.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>

namespace bastion::kernels {
namespace {

template <class T>
T* sized(std::vector<T>& v, std::int64_t n) {
  v.resize(static_cast<std::size_t>(n));
  return v.data();
}

}  // namespace

decoder::decoder(const model& m, backend& be, kv_cache& kv, std::int64_t step_tokens_max)
    : model_(m), be_(be), kv_(kv), step_tokens_max_(step_tokens_max) {}

status decoder::check(const std::vector<step_entry>& batch) const {
  const auto& c = model_.config;
  if (kv_.config().n_layers != c.n_layers || kv_.config().kv_dim != c.kv_dim())
    return {status_code::invalid_argument, "decoder: the KV cache was made for another model"};
  std::int64_t total = 0;
  std::set<sequence_id> seen;
  for (const auto& e : batch) {
    const std::string who = "decoder: sequence " + std::to_string(e.seq);
    if (!kv_.has_sequence(e.seq)) return {status_code::invalid_argument, who + " is not live"};
    if (!seen.insert(e.seq).second)
      return {status_code::invalid_argument, who + " appears twice in one step"};
    if (e.tokens.empty()) return {status_code::invalid_argument, who + " has no tokens"};
    for (auto t : e.tokens)
      if (t < 0 || t >= c.vocab)
        return {status_code::invalid_argument, who + ": token id " + std::to_string(t) +
                                                   " is outside the vocabulary of " +
                                                   std::to_string(c.vocab)};
    const auto n = static_cast<std::int64_t>(e.tokens.size());
    if (kv_.length(e.seq) + n > c.context)
      return {status_code::invalid_argument,
              who + " would grow to " + std::to_string(kv_.length(e.seq) + n) +
                  " tokens, past the model's context of " + std::to_string(c.context)};
    total += n;
  }
  if (total > step_tokens_max_)
    return {status_code::invalid_argument, "decoder: a step of " + std::to_string(total) +
                                               " tokens exceeds the bound of " +
                                               std::to_string(step_tokens_max_)};
  return status::ok();
}

status decoder::step(const std::vector<step_entry>& batch, step_output& out) {
  if (auto s = check(batch); !s) return s;
  // Take the KV slots of every entry first, all or none.
  std::size_t grown = 0;
  status result;
  for (; grown < batch.size(); ++grown) {
    std::int64_t first = 0;
    result =
        kv_.extend(batch[grown].seq, static_cast<std::int64_t>(batch[grown].tokens.size()), first);
    if (!result) break;
  }
  if (result) result = forward(batch, out);
  if (!result)
    for (std::size_t i = 0; i < grown; ++i)
      (void)kv_.shrink(batch[i].seq, static_cast<std::int64_t>(batch[i].tokens.size()));
  return result;
}

status decoder::forward(const std::vector<step_entry>& batch, step_output& out) {
  const auto& c = model_.config;
  const auto& w = model_.weights;
  // Per-token tables: id, position, entry index, KV slot; per-entry block table ranges.
  ids_.clear();
  positions_.clear();
  token_seq_.clear();
  slots_.clear();
  seq_block_begin_.assign(1, 0);
  block_table_.clear();
  for (std::size_t e = 0; e < batch.size(); ++e) {
    const auto& entry = batch[e];
    const auto n = static_cast<std::int64_t>(entry.tokens.size());
    const std::int64_t first = kv_.length(entry.seq) - n;
    for (std::int64_t i = 0; i < n; ++i) {
      ids_.push_back(entry.tokens[static_cast<std::size_t>(i)]);
      positions_.push_back(static_cast<std::int32_t>(first + i));
      token_seq_.push_back(static_cast<std::int32_t>(e));
      slots_.push_back(kv_.slot(entry.seq, first + i));
    }
    const auto* table = kv_.block_table(entry.seq);
    block_table_.insert(block_table_.end(), table->begin(), table->end());
    seq_block_begin_.push_back(static_cast<std::int32_t>(block_table_.size()));
  }
  const auto T = static_cast<std::int64_t>(ids_.size());
  float* x = sized(x_, T * c.dim);
  float* h = sized(h_, T * c.dim);
  float* q = sized(q_, T * c.q_dim());
  float* k = sized(k_, T * c.kv_dim());
  float* v = sized(v_, T * c.kv_dim());
  float* attn = sized(attn_, T * c.q_dim());
  float* o = sized(o_, T * c.dim);
  float* gate = sized(gate_, T * c.ffn_dim);
  float* up = sized(up_, T * c.ffn_dim);

  attention_batch ab;
  ab.n_tokens = T;
  ab.n_heads = c.n_heads;
  ab.n_kv_heads = c.n_kv_heads;
  ab.head_dim = c.head_dim;
  ab.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
  ab.positions = positions_.data();
  ab.token_seq = token_seq_.data();
  ab.n_seqs = static_cast<std::int64_t>(batch.size());
  ab.seq_block_begin = seq_block_begin_.data();
  ab.block_table = block_table_.data();

#define BASTION_TRY(expr) \
  do {                    \
    status s_ = (expr);   \
    if (!s_) return s_;   \
  } while (0)

  BASTION_TRY(be_.embed_rows(w.token_embd, ids_.data(), T, x));
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const auto& L = w.layers[static_cast<std::size_t>(l)];
    const paged_kv_view kv = kv_.layer_view(l);
    // Attention block: x += Wo * attention(rope(Wq h), rope(Wk h), Wv h), h = rmsnorm(x).
    BASTION_TRY(be_.rmsnorm_f32(x, L.attn_norm.data(), h, T, c.dim, c.rms_eps));
    BASTION_TRY(be_.matmul(h, L.wq, q, T));
    BASTION_TRY(be_.matmul(h, L.wk, k, T));
    BASTION_TRY(be_.matmul(h, L.wv, v, T));
    if (c.qkv_bias) {
      BASTION_TRY(be_.add_bias_f32(q, L.bq.data(), T, c.q_dim()));
      BASTION_TRY(be_.add_bias_f32(k, L.bk.data(), T, c.kv_dim()));
      BASTION_TRY(be_.add_bias_f32(v, L.bv.data(), T, c.kv_dim()));
    }
    BASTION_TRY(be_.rope_f32(q, positions_.data(), T, c.n_heads, c.head_dim, c.rope));
    BASTION_TRY(be_.rope_f32(k, positions_.data(), T, c.n_kv_heads, c.head_dim, c.rope));
    BASTION_TRY(be_.kv_write_f32(k, v, slots_.data(), T, kv));
    BASTION_TRY(be_.paged_attention_f32(q, ab, kv, attn));
    BASTION_TRY(be_.matmul(attn, L.wo, o, T));
    BASTION_TRY(be_.add_f32(x, o, T * c.dim));
    // MLP block: x += W_down (silu(W_gate h) * W_up h), h = rmsnorm(x).
    BASTION_TRY(be_.rmsnorm_f32(x, L.ffn_norm.data(), h, T, c.dim, c.rms_eps));
    BASTION_TRY(be_.matmul(h, L.w_gate, gate, T));
    BASTION_TRY(be_.matmul(h, L.w_up, up, T));
    BASTION_TRY(be_.silu_mul_f32(gate, up, gate, T * c.ffn_dim));
    BASTION_TRY(be_.matmul(gate, L.w_down, o, T));
    BASTION_TRY(be_.add_f32(x, o, T * c.dim));
  }

  // Logits only for the rows asked for: the last token of each entry, or all of its tokens.
  out.vocab = c.vocab;
  out.row_begin.assign(1, 0);
  std::int64_t rows = 0, token = 0;
  for (const auto& e : batch) {
    const auto n = static_cast<std::int64_t>(e.tokens.size());
    rows += e.all_logits ? n : 1;
    out.row_begin.push_back(rows);
    token += n;
  }
  float* hf = sized(final_, rows * c.dim);
  std::int64_t row = 0;
  token = 0;
  for (const auto& e : batch) {
    const auto n = static_cast<std::int64_t>(e.tokens.size());
    for (std::int64_t i = e.all_logits ? 0 : n - 1; i < n; ++i, ++row)
      std::copy_n(x + (token + i) * c.dim, c.dim, hf + row * c.dim);
    token += n;
  }
  BASTION_TRY(be_.rmsnorm_f32(hf, w.output_norm.data(), hf, rows, c.dim, c.rms_eps));
  out.logits.resize(static_cast<std::size_t>(rows * c.vocab));
  BASTION_TRY(be_.matmul(hf, w.output, out.logits.data(), rows));
#undef BASTION_TRY
  return status::ok();
}

}  // namespace bastion::kernels
