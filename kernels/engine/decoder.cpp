#include "kernels/engine/decoder.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>

namespace bastion::kernels {
namespace {

// Offsets (in floats) of the step's activations inside one allocation; each region starts on
// a 64-float (256-byte) boundary.
std::int64_t take(std::int64_t& cursor, std::int64_t floats) {
  const std::int64_t at = cursor;
  cursor += (floats + 63) / 64 * 64;
  return at;
}

}  // namespace

decoder::decoder(const model& m, backend& be, kv_cache& kv, std::int64_t step_tokens_max)
    : model_(m), be_(be), kv_(kv), step_tokens_max_(step_tokens_max) {}

decoder::~decoder() { be_.forget_recordings(); }

status decoder::prepare() {
  if (ready_) return status::ok();
  if (auto s = resident_weights::make(model_, be_, weights_); !s) return s;
  ready_ = true;
  return status::ok();
}

status decoder::check(const std::vector<step_entry>& batch) const {
  const auto& c = model_.config;
  if (kv_.config().n_layers != c.n_layers || kv_.config().kv_dim != c.kv_dim())
    return {status_code::invalid_argument, "decoder: the KV cache was made for another model"};
  if (!be_.uses_host_memory() && kv_.storage_backend() != &be_)
    return {status_code::invalid_argument,
            "decoder: the KV cache is not in " + std::string{be_.name()} +
                "'s memory (create it with kv_cache::create(config, backend, ...))"};
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

status decoder::step(const std::vector<step_entry>& batch, step_output& out, step_results want) {
  if (auto s = check(batch); !s) return s;
  if (auto s = prepare(); !s) return s;
  // Take the KV slots of every entry first, all or none.
  std::size_t grown = 0;
  status result;
  for (; grown < batch.size(); ++grown) {
    std::int64_t first = 0;
    result =
        kv_.extend(batch[grown].seq, static_cast<std::int64_t>(batch[grown].tokens.size()), first);
    if (!result) break;
  }
  if (result) result = forward(batch, out, want);
  if (!result)
    for (std::size_t i = 0; i < grown; ++i)
      (void)kv_.shrink(batch[i].seq, static_cast<std::int64_t>(batch[i].tokens.size()));
  return result;
}

status decoder::forward(const std::vector<step_entry>& batch, step_output& out, step_results want) {
  const auto& c = model_.config;
  const auto& w = weights_;
  // Per-token tables: id, position, entry index, KV slot; per-entry block table ranges; the
  // rows that get logits (the last token of each entry, or all of its tokens).
  std::int64_t T = 0, blocks = 0, rows = 0;
  bool decode_only = true;
  for (const auto& e : batch) {
    const auto n = static_cast<std::int64_t>(e.tokens.size());
    T += n;
    blocks += static_cast<std::int64_t>(kv_.block_table(e.seq)->size());
    rows += e.all_logits ? n : 1;
    decode_only = decode_only && n == 1 && !e.all_logits;
  }
  const auto n_seqs = static_cast<std::int64_t>(batch.size());
  const std::int64_t ids_at = 0, positions_at = T, token_seq_at = 2 * T, slots_at = 3 * T,
                     seq_block_begin_at = 4 * T, rows_at = seq_block_begin_at + n_seqs + 1,
                     block_table_at = rows_at + rows, tables_size = block_table_at + blocks;
  tables_.resize(static_cast<std::size_t>(tables_size));
  std::int32_t* tab = tables_.data();
  out.vocab = c.vocab;
  out.row_begin.assign(1, 0);
  std::int64_t t = 0, b = 0, r = 0;
  tab[seq_block_begin_at] = 0;
  for (std::size_t e = 0; e < batch.size(); ++e) {
    const auto& entry = batch[e];
    const auto n = static_cast<std::int64_t>(entry.tokens.size());
    const std::int64_t first = kv_.length(entry.seq) - n;
    for (std::int64_t i = 0; i < n; ++i, ++t) {
      tab[ids_at + t] = entry.tokens[static_cast<std::size_t>(i)];
      tab[positions_at + t] = static_cast<std::int32_t>(first + i);
      tab[token_seq_at + t] = static_cast<std::int32_t>(e);
      tab[slots_at + t] = kv_.slot(entry.seq, first + i);
      if (entry.all_logits || i == n - 1) tab[rows_at + r++] = static_cast<std::int32_t>(t);
    }
    for (auto block : *kv_.block_table(entry.seq)) tab[block_table_at + b++] = block;
    tab[seq_block_begin_at + static_cast<std::int64_t>(e) + 1] = static_cast<std::int32_t>(b);
    out.row_begin.push_back(r);
  }

  // One upload of the tables, one allocation of the activations (both kept across steps).
  const bool host = be_.uses_host_memory();
  std::int64_t cursor = 0;
  const std::int64_t x_at = take(cursor, T * c.dim), h_at = take(cursor, T * c.dim),
                     q_at = take(cursor, T * c.q_dim()), k_at = take(cursor, T * c.kv_dim()),
                     v_at = take(cursor, T * c.kv_dim()), attn_at = take(cursor, T * c.q_dim()),
                     o_at = take(cursor, T * c.dim), gate_at = take(cursor, T * c.ffn_dim),
                     up_at = take(cursor, T * c.ffn_dim), final_at = take(cursor, rows * c.dim),
                     logits_at = take(cursor, host ? 0 : rows * c.vocab),
                     greedy_at = take(cursor, host ? 0 : rows);
  if (auto s = tables_dev_.reserve(&be_, static_cast<std::size_t>(tables_size) * 4); !s) return s;
  if (auto s = activations_.reserve(&be_, static_cast<std::size_t>(cursor) * 4); !s) return s;
  if (auto s = be_.upload(tables_dev_.data(), tab, static_cast<std::size_t>(tables_size) * 4); !s)
    return s;
  const std::int32_t* dtab = tables_dev_.as<std::int32_t>();
  float* act = activations_.as<float>();
  float* x = act + x_at;
  float* h = act + h_at;
  float* q = act + q_at;
  float* k = act + k_at;
  float* v = act + v_at;
  float* attn = act + attn_at;
  float* o = act + o_at;
  float* gate = act + gate_at;
  float* up = act + up_at;
  float* hf = act + final_at;
  const std::int32_t* positions = dtab + positions_at;

  attention_batch ab;
  ab.n_tokens = T;
  ab.n_heads = c.n_heads;
  ab.n_kv_heads = c.n_kv_heads;
  ab.head_dim = c.head_dim;
  ab.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
  ab.positions = positions;
  ab.token_seq = dtab + token_seq_at;
  ab.n_seqs = n_seqs;
  ab.seq_block_begin = dtab + seq_block_begin_at;
  ab.block_table = dtab + block_table_at;

#define BASTION_TRY(expr) \
  do {                    \
    status s_ = (expr);   \
    if (!s_) return s_;   \
  } while (0)

  const bool want_logits = want != step_results::greedy_tokens;
  const bool want_greedy = want != step_results::logits;
  out.logits.resize(want_logits || host ? static_cast<std::size_t>(rows * c.vocab) : 0);
  out.greedy_tokens.resize(want_greedy ? static_cast<std::size_t>(rows) : 0);
  float* logits = host ? out.logits.data() : act + logits_at;
  backend_logits_ = host ? nullptr : logits;
  auto* greedy = host ? out.greedy_tokens.data() : reinterpret_cast<std::int32_t*>(act + greedy_at);

  // Everything from the embedding to the logits (and the greedy tokens) queues device work
  // only, so a device backend can record it once per decode batch shape and replay it.
  const auto enqueue = [&]() -> status {
    BASTION_TRY(be_.embed_rows(w.token_embd, dtab + ids_at, T, x));
    for (std::int64_t l = 0; l < c.n_layers; ++l) {
      const auto& L = w.layers[static_cast<std::size_t>(l)];
      const paged_kv_view kv = kv_.layer_view(l);
      // Attention block: x += Wo * attention(rope(Wq h), rope(Wk h), Wv h), h = rmsnorm(x).
      BASTION_TRY(be_.rmsnorm_f32(x, L.attn_norm, h, T, c.dim, c.rms_eps));
      {
        const weight_view qkv[3] = {L.wq, L.wk, L.wv};
        float* const qkv_out[3] = {q, k, v};
        BASTION_TRY(be_.matmul_shared_input(h, qkv, qkv_out, 3, T));
      }
      if (c.qkv_bias) {
        BASTION_TRY(be_.add_bias_f32(q, L.bq, T, c.q_dim()));
        BASTION_TRY(be_.add_bias_f32(k, L.bk, T, c.kv_dim()));
        BASTION_TRY(be_.add_bias_f32(v, L.bv, T, c.kv_dim()));
      }
      BASTION_TRY(be_.rope_f32(q, positions, T, c.n_heads, c.head_dim, c.rope));
      BASTION_TRY(be_.rope_f32(k, positions, T, c.n_kv_heads, c.head_dim, c.rope));
      BASTION_TRY(be_.kv_write_f32(k, v, dtab + slots_at, T, kv));
      BASTION_TRY(be_.paged_attention_f32(q, ab, kv, attn));
      BASTION_TRY(be_.matmul(attn, L.wo, o, T));
      if (collective_) BASTION_TRY(collective_->all_reduce_sum(o, T * c.dim));
      BASTION_TRY(be_.add_f32(x, o, T * c.dim));
      // MLP block: x += W_down (silu(W_gate h) * W_up h), h = rmsnorm(x).
      BASTION_TRY(be_.rmsnorm_f32(x, L.ffn_norm, h, T, c.dim, c.rms_eps));
      {
        const weight_view gate_up[2] = {L.w_gate, L.w_up};
        float* const gate_up_out[2] = {gate, up};
        BASTION_TRY(be_.matmul_shared_input(h, gate_up, gate_up_out, 2, T));
      }
      BASTION_TRY(be_.silu_mul_f32(gate, up, gate, T * c.ffn_dim));
      BASTION_TRY(be_.matmul(gate, L.w_down, o, T));
      if (collective_) BASTION_TRY(collective_->all_reduce_sum(o, T * c.dim));
      BASTION_TRY(be_.add_f32(x, o, T * c.dim));
    }

    // Gather the rows that get logits: embed_rows over x viewed as an F32 table is a row gather.
    const weight_view x_rows{tensor_type::f32, x, T, c.dim};
    BASTION_TRY(be_.embed_rows(x_rows, dtab + rows_at, rows, hf));
    BASTION_TRY(be_.rmsnorm_f32(hf, w.output_norm, hf, rows, c.dim, c.rms_eps));
    BASTION_TRY(be_.matmul(hf, w.output, logits, rows));
    if (want_greedy) BASTION_TRY(be_.argmax_rows_f32(logits, rows, c.vocab, greedy));
    return status::ok();
  };

  // A collective's all-reduces are recorded with the rest when it can be (NCCL): one replay per
  // rank per decode step instead of a launch per operation, where a split model has the most.
  const bool recordable_collective = !collective_ || collective_->capturable();
  if (!host && recordings_ && decode_only && recordable_collective &&
      T <= recorded_step_tokens_max) {
    // Everything the recorded operations depend on that is not in device memory: the shapes
    // and every pointer they use (the weights', the KV pool's, the scratch's).
    const auto at = [](const void* p) {
      return static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(p));
    };
    const backend::recording_key key{T,
                                     n_seqs,
                                     rows,
                                     want_greedy ? 1 : 0,
                                     c.n_layers,
                                     c.dim,
                                     c.vocab,
                                     at(act),
                                     at(dtab),
                                     at(w.token_embd.data),
                                     at(w.output.data),
                                     at(c.n_layers > 0 ? kv_.layer_view(0).k : nullptr),
                                     at(collective_)};
    BASTION_TRY(be_.run_recorded(key, enqueue));
  } else {
    BASTION_TRY(enqueue());
  }
  if (!host && want_logits)
    BASTION_TRY(be_.download(out.logits.data(), logits,
                             static_cast<std::size_t>(rows * c.vocab) * sizeof(float)));
  if (!host && want_greedy)
    BASTION_TRY(be_.download(out.greedy_tokens.data(), greedy,
                             static_cast<std::size_t>(rows) * sizeof(std::int32_t)));
#undef BASTION_TRY
  return status::ok();
}

}  // namespace bastion::kernels
