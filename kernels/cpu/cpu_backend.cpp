#include "kernels/cpu/cpu_backend.hpp"

#include "kernels/cpu/cpu_kernels.hpp"
#include "kernels/cpu/thread_pool.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <thread>
#include <vector>

#ifdef BASTION_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace bastion::kernels {
namespace {

status invalid(const char* op, const std::string& why) {
  return {status_code::invalid_argument, std::string{op} + ": " + why};
}

status check_shape(const void* a, const void* b, const void* c, std::int64_t m, std::int64_t n,
                   std::int64_t k, const char* op) {
  if (!a || !b || !c) return invalid(op, "null pointer");
  if (m < 0 || n < 0 || k < 0)
    return invalid(op, "negative dimension (m=" + std::to_string(m) + ", n=" + std::to_string(n) +
                           ", k=" + std::to_string(k) + ")");
  return status::ok();
}

status check_weight(const weight_view& w, const char* op) {
  const auto tr = traits_of(static_cast<std::uint32_t>(w.type));
  if (!tr)
    return {status_code::unsupported,
            std::string{op} + ": weight type " +
                std::string{ggml_type_name(static_cast<std::uint32_t>(w.type))} + " unsupported"};
  if (!w.data) return invalid(op, "weight has no data");
  if (w.rows < 0 || w.cols <= 0 || w.cols % tr->block_elems != 0)
    return invalid(op, "weight shape " + std::to_string(w.rows) + " x " + std::to_string(w.cols) +
                           " is not whole " + std::string{tr->name} + " blocks");
  return status::ok();
}

bool is_quantized(tensor_type t) {
  return t == tensor_type::q8_0 || t == tensor_type::q4_0 || t == tensor_type::q4_1;
}

// Splits n output rows into tasks of whole 8-row tiles (cpu::gemm_q8_row_align), about four
// tasks per thread so a thread slowed by another process does not hold the others up.
std::int64_t rows_per_task(std::int64_t n, int threads) {
  constexpr std::int64_t align = cpu::gemm_q8_row_align;
  if (threads <= 1) return std::max<std::int64_t>(n, 1);
  const std::int64_t want = (n + 4 * threads - 1) / (4 * threads);
  return std::max<std::int64_t>(align, (want + align - 1) / align * align);
}

// Element-wise operations go to the pool in pieces of this many floats: a decode step of one
// sequence (a few thousand floats) stays on the caller's thread, where a hand-off would cost
// more than the work; a batch's are shared. Each element is computed alone, so the split
// changes no bit.
constexpr std::int64_t elementwise_floats_per_task = 4096;

// Scratch of one thread, sized before a parallel run so no task allocates.
struct thread_scratch {
  std::vector<float> tile;          // exact matmul: dequantized weight rows
  std::vector<std::int64_t> slots;  // attention: pool offset of each key of the current query
  std::vector<float> scores;        // attention: scores of the current query head
};

class cpu_backend final : public backend {
 public:
  cpu_backend(const cpu::cpu_kernels& kernels, int threads, cpu_matmul_numerics numerics,
              bool repack_weights)
      : kern_(kernels),
        numerics_(numerics),
        repack_weights_(repack_weights),
        scratch_(static_cast<std::size_t>(threads)),
        pool_(threads) {}

  std::string_view name() const noexcept override { return "cpu"; }

  status matmul_f32(const float* x, const float* w, float* y, std::int64_t m, std::int64_t n,
                    std::int64_t k) override {
    if (auto s = check_shape(x, w, y, m, n, k, "matmul_f32"); !s) return s;
    if (m == 0 || n == 0) return status::ok();
#ifdef BASTION_HAVE_OPENBLAS
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m),
                static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, x, static_cast<blasint>(k),
                w, static_cast<blasint>(k), 0.0f, y, static_cast<blasint>(n));
#else
    const std::int64_t per_task = rows_per_task(n, pool_.threads());
    pool_.run((n + per_task - 1) / per_task, [&](std::int64_t task, int) {
      const std::int64_t j0 = task * per_task, j1 = std::min(n, j0 + per_task);
      kern_.gemm_f32(x, m, w + j0 * k, j1 - j0, k, y + j0, n);
    });
#endif
    return status::ok();
  }

  status matmul(const float* x, const weight_view& w, float* y, std::int64_t m) override {
    return matmul_shared_input(x, &w, &y, 1, m);
  }

  // With int8 numerics and a kernel set that reads the eight-row layout (AVX2), quantized
  // matrices of eight rows or more have a copy in pack_rows8's layout (the same size): the
  // eight-row tiles read one stream instead of eight rows. The scalar set reads the stored
  // layout, so it gets no copy (it would only double the matrices' memory).
  std::uint64_t repacked_bytes(const weight_view& w) const override {
    if (!repack_weights_ || !kern_.gemm_q8_rows8 ||
        numerics_ != cpu_matmul_numerics::int8_activations || !is_quantized(w.type) ||
        w.layout != weight_layout::stored || w.rows < cpu::gemm_q8_row_align ||
        !check_weight(w, "repack"))
      return 0;
    return *row_bytes(w.type, static_cast<std::uint64_t>(w.cols)) *
           static_cast<std::uint64_t>(w.rows);
  }

  status repack_weight(const weight_view& w, void* dst, weight_view& out) override {
    if (repacked_bytes(w) == 0) {
      const char* why = numerics_ != cpu_matmul_numerics::int8_activations ? " with exact numerics"
                        : !repack_weights_                                 ? " (repacking is off)"
                        : !kern_.gemm_q8_rows8 ? " (the scalar kernels read the stored layout)"
                                               : "";
      return {status_code::unsupported,
              "repack_weight: no faster layout for a " +
                  std::string{ggml_type_name(static_cast<std::uint32_t>(w.type))} + " " +
                  std::to_string(w.rows) + " x " + std::to_string(w.cols) + " weight" + why};
    }
    if (!dst) return invalid("repack_weight", "null destination");
    cpu::pack_rows8(w.type, static_cast<const std::uint8_t*>(w.data), w.rows,
                    w.cols / cpu::q8_block_elems, static_cast<std::uint8_t*>(dst));
    out = w;
    out.data = dst;
    out.layout = weight_layout::cpu_rows8;
    return status::ok();
  }

  // Quantized weights with int8_activations: the activations are quantized once per call (one
  // call covers every product of the same input), then integer block products, the tasks of
  // up to eight products in one parallel run. Otherwise F32 products, F32 weights read in place
  // when aligned, other types dequantized a tile of rows at a time into the thread's scratch.
  // Every output element is computed the same way whatever m, the other products of the call
  // and the split between threads, so a sequence gets the same bits alone or batched.
  status matmul_shared_input(const float* x, const weight_view* ws, float* const* ys, int count,
                             std::int64_t m) override {
    if (count < 0 || (count > 0 && (!ws || !ys)))
      return invalid("matmul", "bad list of products (count " + std::to_string(count) + ")");
    for (int i = 0; i < count; ++i) {
      const weight_view& w = ws[i];
      if (auto s = check_weight(w, "matmul"); !s) return s;
      if (auto s = check_shape(x, w.data, ys[i], m, w.rows, w.cols, "matmul"); !s) return s;
      if (w.cols != ws[0].cols)
        return invalid("matmul", "products of one input differ in width (" +
                                     std::to_string(w.cols) + " vs " + std::to_string(ws[0].cols) +
                                     ")");
      if (w.layout == weight_layout::cpu_rows8 &&
          (numerics_ != cpu_matmul_numerics::int8_activations || !is_quantized(w.type)))
        return invalid("matmul",
                       "an eight-row repacked weight needs a quantized type and the "
                       "int8 numerics");
      if (w.layout == weight_layout::cpu_rows8 && !kern_.gemm_q8_rows8)
        return invalid("matmul",
                       std::string{"an eight-row repacked weight cannot be read by the "} +
                           kern_.name + " kernels (they read the stored layout)");
    }
    if (m == 0 || count == 0) return status::ok();
    const bool int8 = numerics_ == cpu_matmul_numerics::int8_activations;
    bool quantized = false;
    for (int i = 0; i < count; ++i) {
      if (int8 && is_quantized(ws[i].type))
        quantized = true;
      else
        matmul_f32_numerics(x, ws[i], ys[i], m);
    }
    if (quantized) matmul_int8(x, ws, ys, count, m);
    return status::ok();
  }

  // The quantized products of the list with int8 activations. REQUIRES: checked by
  // matmul_shared_input; m > 0.
  void matmul_int8(const float* x, const weight_view* ws, float* const* ys, int count,
                   std::int64_t m) {
    const std::int64_t k = ws[0].cols, nb = k / cpu::q8_block_elems;
    if (xq_.size() < static_cast<std::size_t>(m * nb)) xq_.resize(static_cast<std::size_t>(m * nb));
    cpu::q8_block* xq = xq_.data();
    constexpr std::int64_t quantize_rows_per_task = 16;
    pool_.run((m + quantize_rows_per_task - 1) / quantize_rows_per_task,
              [&](std::int64_t task, int) {
                const std::int64_t i0 = task * quantize_rows_per_task;
                const std::int64_t i1 = std::min(m, i0 + quantize_rows_per_task);
                for (std::int64_t i = i0; i < i1; ++i) kern_.quantize_q8(x + i * k, xq + i * nb, k);
              });
    // Up to eight products per parallel run, their tasks back to back: product at[i] owns
    // tasks [first[i], first[i + 1]).
    constexpr int products_per_run = 8;
    int next = 0;
    while (next < count) {
      int at[products_per_run], products = 0;
      for (; next < count && products < products_per_run; ++next)
        if (is_quantized(ws[next].type)) at[products++] = next;
      std::int64_t first[products_per_run + 1] = {0}, per_task[products_per_run] = {};
      for (int i = 0; i < products; ++i) {
        per_task[i] = rows_per_task(ws[at[i]].rows, pool_.threads());
        first[i + 1] = first[i] + (ws[at[i]].rows + per_task[i] - 1) / per_task[i];
      }
      pool_.run(first[products], [&](std::int64_t task, int) {
        int i = 0;
        while (task >= first[i + 1]) ++i;
        const weight_view& w = ws[at[i]];
        const std::int64_t j0 = (task - first[i]) * per_task[i];
        const std::int64_t j1 = std::min(w.rows, j0 + per_task[i]);
        const auto gemm =
            w.layout == weight_layout::cpu_rows8 ? kern_.gemm_q8_rows8 : kern_.gemm_q8;
        gemm(w.type, xq, m, nb, static_cast<const std::uint8_t*>(w.data),
             *row_bytes(w.type, static_cast<std::uint64_t>(k)), j0, j1, ys[at[i]], w.rows);
      });
    }
  }

  // One product with F32 arithmetic. REQUIRES: checked by matmul_shared_input; m > 0.
  void matmul_f32_numerics(const float* x, const weight_view& w, float* y, std::int64_t m) {
    if (w.rows == 0) return;
    const std::int64_t n = w.rows, k = w.cols;
    const std::size_t stride = *row_bytes(w.type, static_cast<std::uint64_t>(k));
    const auto* base = static_cast<const std::uint8_t*>(w.data);
    const std::int64_t per_task = rows_per_task(n, pool_.threads());
    const std::int64_t tasks = (n + per_task - 1) / per_task;
    const bool in_place = w.type == tensor_type::f32 &&
                          reinterpret_cast<std::uintptr_t>(w.data) % alignof(float) == 0;
    if (in_place) {
      const auto* wf = static_cast<const float*>(w.data);
      pool_.run(tasks, [&](std::int64_t task, int) {
        const std::int64_t j0 = task * per_task, j1 = std::min(n, j0 + per_task);
        kern_.gemm_f32(x, m, wf + j0 * k, j1 - j0, k, y + j0, n);
      });
      return;
    }
    constexpr std::int64_t tile_rows = 16;  // dequantized rows kept in cache for all of x
    for (auto& sc : scratch_) sc.tile.resize(static_cast<std::size_t>(tile_rows * k));
    pool_.run(tasks, [&](std::int64_t task, int thread) {
      float* tile = scratch_[static_cast<std::size_t>(thread)].tile.data();
      const std::int64_t j_end = std::min(n, (task + 1) * per_task);
      for (std::int64_t j0 = task * per_task; j0 < j_end; j0 += tile_rows) {
        const std::int64_t nt = std::min(tile_rows, j_end - j0);
        for (std::int64_t j = 0; j < nt; ++j)
          kern_.dequantize(w.type, base + static_cast<std::size_t>(j0 + j) * stride, tile + j * k,
                           k);
        kern_.gemm_f32(x, m, tile, nt, k, y + j0, n);
      }
    });
  }

  status embed_rows(const weight_view& table, const std::int32_t* ids, std::int64_t n,
                    float* out) override {
    if (auto s = check_weight(table, "embed_rows"); !s) return s;
    if (table.layout != weight_layout::stored)
      return invalid("embed_rows", "the table is in a repacked layout (only matmul reads it)");
    if (n < 0 || (n > 0 && (!ids || !out))) return invalid("embed_rows", "bad ids or output");
    const std::uint64_t stride = *row_bytes(table.type, static_cast<std::uint64_t>(table.cols));
    for (std::int64_t i = 0; i < n; ++i) {
      if (ids[i] < 0 || ids[i] >= table.rows)
        return invalid("embed_rows", "token id " + std::to_string(ids[i]) + " outside [0, " +
                                         std::to_string(table.rows) + ")");
      dequantize_row(table.type,
                     static_cast<const std::uint8_t*>(table.data) +
                         static_cast<std::uint64_t>(ids[i]) * stride,
                     out + i * table.cols, table.cols);
    }
    return status::ok();
  }

  status rmsnorm_f32(const float* x, const float* weight, float* y, std::int64_t rows,
                     std::int64_t dim, float eps) override {
    if (auto s = check_shape(x, weight, y, rows, dim, 1, "rmsnorm_f32"); !s) return s;
    if (dim == 0) return invalid("rmsnorm_f32", "dim is 0");
    const std::int64_t rows_per_task = std::max<std::int64_t>(1, elementwise_floats_per_task / dim);
    pool_.run((rows + rows_per_task - 1) / rows_per_task, [&](std::int64_t task, int) {
      for (std::int64_t r = task * rows_per_task; r < std::min(rows, (task + 1) * rows_per_task);
           ++r) {
        const float* xr = x + r * dim;
        float* yr = y + r * dim;
        double sum_sq = 0.0;  // double: long rows of large activations lose precision in float
        for (std::int64_t i = 0; i < dim; ++i)
          sum_sq += static_cast<double>(xr[i]) * static_cast<double>(xr[i]);
        const float scale = static_cast<float>(
            1.0 / std::sqrt(sum_sq / static_cast<double>(dim) + static_cast<double>(eps)));
        for (std::int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * scale * weight[i];
      }
    });
    return status::ok();
  }

  status add_bias_f32(float* y, const float* bias, std::int64_t rows, std::int64_t dim) override {
    if (auto s = check_shape(y, bias, y, rows, dim, 1, "add_bias_f32"); !s) return s;
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t i = 0; i < dim; ++i) y[r * dim + i] += bias[i];
    return status::ok();
  }

  status add_f32(float* y, const float* x, std::int64_t n) override {
    if (auto s = check_shape(y, x, y, n, 1, 1, "add_f32"); !s) return s;
    for_pieces(n, [&](std::int64_t i0, std::int64_t i1) {
      for (std::int64_t i = i0; i < i1; ++i) y[i] += x[i];
    });
    return status::ok();
  }

  status rope_f32(float* x, const std::int32_t* positions, std::int64_t tokens, std::int64_t heads,
                  std::int64_t head_dim, const rope_params& rope) override {
    if (auto s = check_shape(x, positions, x, tokens, heads, head_dim, "rope_f32"); !s) return s;
    if (rope.rot_dim <= 0 || rope.rot_dim % 2 != 0 || rope.rot_dim > head_dim)
      return invalid("rope_f32",
                     "rot_dim " + std::to_string(rope.rot_dim) +
                         " must be even and in (0, head_dim=" + std::to_string(head_dim) + "]");
    if (!(rope.base > 1.0f)) return invalid("rope_f32", "base must be > 1");
    for (std::int64_t t = 0; t < tokens; ++t)
      if (positions[t] < 0) return invalid("rope_f32", "negative position");
    const std::int64_t half = rope.rot_dim / 2;
    fill_rope_table(positions, tokens, rope);
    const float* cos_sin = rope_table_.data();
    const std::int64_t tokens_per_task =
        std::max<std::int64_t>(1, elementwise_floats_per_task / (heads * head_dim));
    pool_.run((tokens + tokens_per_task - 1) / tokens_per_task, [&](std::int64_t task, int) {
      for (std::int64_t t = task * tokens_per_task;
           t < std::min(tokens, (task + 1) * tokens_per_task); ++t)
        for (std::int64_t i = 0; i < half; ++i) {
          const float c = cos_sin[2 * (t * half + i)], s = cos_sin[2 * (t * half + i) + 1];
          const std::int64_t a = rope.style == rope_style::adjacent_pairs ? 2 * i : i;
          const std::int64_t b = rope.style == rope_style::adjacent_pairs ? 2 * i + 1 : i + half;
          for (std::int64_t h = 0; h < heads; ++h) {
            float* xh = x + (t * heads + h) * head_dim;
            const float x0 = xh[a], x1 = xh[b];
            xh[a] = x0 * c - x1 * s;
            xh[b] = x0 * s + x1 * c;
          }
        }
    });
    return status::ok();
  }

  // rope_table_ = (cos, sin) of every token's angle for every pair, in double then rounded.
  // A step rotates q and k of every layer at the same positions; the table of the previous
  // call is kept when the positions and parameters are the same (compared by value).
  void fill_rope_table(const std::int32_t* positions, std::int64_t tokens,
                       const rope_params& rope) {
    const bool same = rope_positions_.size() == static_cast<std::size_t>(tokens) &&
                      std::equal(positions, positions + tokens, rope_positions_.begin()) &&
                      rope_for_.rot_dim == rope.rot_dim && rope_for_.base == rope.base;
    if (same) return;
    const std::int64_t half = rope.rot_dim / 2;
    inv_freq_.resize(static_cast<std::size_t>(half));
    for (std::int64_t i = 0; i < half; ++i)
      inv_freq_[static_cast<std::size_t>(i)] =
          std::pow(static_cast<double>(rope.base),
                   -2.0 * static_cast<double>(i) / static_cast<double>(rope.rot_dim));
    rope_table_.resize(static_cast<std::size_t>(2 * tokens * half));
    for (std::int64_t t = 0; t < tokens; ++t)
      for (std::int64_t i = 0; i < half; ++i) {
        const double angle =
            static_cast<double>(positions[t]) * inv_freq_[static_cast<std::size_t>(i)];
        rope_table_[static_cast<std::size_t>(2 * (t * half + i))] =
            static_cast<float>(std::cos(angle));
        rope_table_[static_cast<std::size_t>(2 * (t * half + i) + 1)] =
            static_cast<float>(std::sin(angle));
      }
    rope_positions_.assign(positions, positions + tokens);
    rope_for_ = rope;
  }

  status kv_write_f32(const float* k, const float* v, const std::int32_t* slots,
                      std::int64_t tokens, const paged_kv_view& kv) override {
    if (auto s = check_shape(k, v, slots, tokens, kv.kv_dim, 1, "kv_write_f32"); !s) return s;
    if (tokens > 0 && (!kv.k || !kv.v)) return invalid("kv_write_f32", "no KV storage");
    const std::int64_t slot_count = kv.blocks * kv.block_tokens;
    for (std::int64_t t = 0; t < tokens; ++t) {
      if (slots[t] < 0 || slots[t] >= slot_count)
        return invalid("kv_write_f32", "slot " + std::to_string(slots[t]) + " outside the pool");
      std::copy_n(k + t * kv.kv_dim, kv.kv_dim, kv.k + slots[t] * kv.kv_dim);
      std::copy_n(v + t * kv.kv_dim, kv.kv_dim, kv.v + slots[t] * kv.kv_dim);
    }
    return status::ok();
  }

  // Parallel over (query token, KV head) pairs: each task handles the query heads that share
  // one KV head, so those keys and values are read once. The batch tables are checked first,
  // so a task cannot fail.
  status paged_attention_f32(const float* q, const attention_batch& b, const paged_kv_view& kv,
                             float* out) override {
    const char* op = "paged_attention_f32";
    if (auto s = check_shape(q, out, kv.k, b.n_tokens, b.n_heads, b.head_dim, op); !s) return s;
    if (b.n_kv_heads <= 0 || b.n_heads % b.n_kv_heads != 0)
      return invalid(op, "n_kv_heads must divide n_heads");
    if (kv.kv_dim != b.n_kv_heads * b.head_dim || !kv.v || kv.block_tokens <= 0)
      return invalid(op, "KV view does not match the heads");
    if (b.n_tokens > 0 && (!b.positions || !b.token_seq || !b.seq_block_begin || !b.block_table))
      return invalid(op, "missing batch tables");
    std::int64_t keys_max = 0;
    for (std::int64_t t = 0; t < b.n_tokens; ++t) {
      const std::int32_t s = b.token_seq[t];
      const std::int64_t pos = b.positions[t];
      if (s < 0 || s >= b.n_seqs) return invalid(op, "token sequence index out of range");
      const std::int32_t* blocks = b.block_table + b.seq_block_begin[s];
      const std::int64_t n_blocks = b.seq_block_begin[s + 1] - b.seq_block_begin[s];
      if (pos < 0 || pos >= n_blocks * kv.block_tokens)
        return invalid(op, "position " + std::to_string(pos) + " beyond the sequence's blocks");
      for (std::int64_t j = 0; j <= pos / kv.block_tokens; ++j)
        if (blocks[j] < 0 || blocks[j] >= kv.blocks)
          return invalid(op, "block id outside the pool");
      keys_max = std::max(keys_max, pos + 1);
    }
    for (auto& sc : scratch_) {
      sc.slots.resize(static_cast<std::size_t>(keys_max));
      sc.scores.resize(static_cast<std::size_t>(keys_max));
    }
    // Pairs in groups, so a long prefill is a bounded number of tasks.
    const std::int64_t pairs = b.n_tokens * b.n_kv_heads;
    constexpr std::int64_t attention_tasks_max = 4096;
    const std::int64_t per_task = (pairs + attention_tasks_max - 1) / attention_tasks_max;
    pool_.run((pairs + per_task - 1) / per_task, [&](std::int64_t task, int thread) {
      for (std::int64_t pair = task * per_task; pair < std::min(pairs, (task + 1) * per_task);
           ++pair)
        attend(q, b, kv, out, pair, scratch_[static_cast<std::size_t>(thread)]);
    });
    return status::ok();
  }

  // One (query token, KV head) pair of paged_attention_f32. REQUIRES: the batch was checked.
  void attend(const float* q, const attention_batch& b, const paged_kv_view& kv, float* out,
              std::int64_t pair, thread_scratch& sc) const noexcept {
    const std::int64_t group = b.n_heads / b.n_kv_heads;
    const std::int64_t hd = b.head_dim;
    const std::int64_t t = pair / b.n_kv_heads, kvh = pair % b.n_kv_heads;
    const std::int32_t* blocks = b.block_table + b.seq_block_begin[b.token_seq[t]];
    const std::int64_t n_keys = b.positions[t] + 1;
    std::int64_t* slot = sc.slots.data();
    float* scores = sc.scores.data();
    // Offsets of each key's (and value's) row in the pool, then this KV head's part of it.
    for (std::int64_t j = 0; j < n_keys; ++j)
      slot[j] = (blocks[j / kv.block_tokens] * kv.block_tokens + j % kv.block_tokens) * kv.kv_dim;
    const float* k_base = kv.k + kvh * hd;
    const float* v_base = kv.v + kvh * hd;
    for (std::int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
      kern_.dot_rows_f32(q + (t * b.n_heads + h) * hd, k_base, slot, n_keys, hd, scores);
      float max_score = -INFINITY;
      for (std::int64_t j = 0; j < n_keys; ++j)
        max_score = std::max(max_score, scores[j] *= b.scale);
      float sum = 0.0f;
      for (std::int64_t j = 0; j < n_keys; ++j)
        sum += (scores[j] = std::exp(scores[j] - max_score));
      const float inv_sum = 1.0f / sum;
      for (std::int64_t j = 0; j < n_keys; ++j) scores[j] *= inv_sum;
      float* oh = out + (t * b.n_heads + h) * hd;
      std::fill_n(oh, hd, 0.0f);
      kern_.axpy_rows_f32(scores, v_base, slot, n_keys, hd, oh);
    }
  }

  status silu_mul_f32(const float* gate, const float* up, float* out, std::int64_t n) override {
    if (auto s = check_shape(gate, up, out, n, 1, 1, "silu_mul_f32"); !s) return s;
    for_pieces(n, [&](std::int64_t i0, std::int64_t i1) {
      kern_.silu_mul_f32(gate + i0, up + i0, out + i0, i1 - i0);
    });
    return status::ok();
  }

  status softmax_f32(float* x, std::int64_t rows, std::int64_t dim) override {
    if (auto s = check_shape(x, x, x, rows, dim, 1, "softmax_f32"); !s) return s;
    for (std::int64_t r = 0; r < rows; ++r) {
      float* xr = x + r * dim;
      const float mx = dim ? *std::max_element(xr, xr + dim) : 0.0f;
      double sum = 0.0;
      for (std::int64_t i = 0; i < dim; ++i)
        sum += static_cast<double>(xr[i] = std::exp(xr[i] - mx));
      const float inv = static_cast<float>(1.0 / sum);
      for (std::int64_t i = 0; i < dim; ++i) xr[i] *= inv;
    }
    return status::ok();
  }

 private:
  // Calls body(i0, i1) over [0, n) in pieces of elementwise_floats_per_task, on the pool.
  template <class Body>
  void for_pieces(std::int64_t n, Body&& body) {
    constexpr std::int64_t piece = elementwise_floats_per_task;
    pool_.run((n + piece - 1) / piece,
              [&](std::int64_t task, int) { body(task * piece, std::min(n, (task + 1) * piece)); });
  }

  const cpu::cpu_kernels& kern_;
  const cpu_matmul_numerics numerics_;
  const bool repack_weights_;
  std::vector<cpu::q8_block> xq_;  // matmul: quantized activations (grows, never shrinks)
  std::vector<double> inv_freq_;   // rope: per-pair frequencies
  std::vector<float> rope_table_;  // rope: (cos, sin) per token and pair
  std::vector<std::int32_t> rope_positions_;  // rope: the positions rope_table_ is for
  rope_params rope_for_{};                    // rope: the parameters rope_table_ is for
  std::vector<thread_scratch> scratch_;       // one per pool thread
  cpu::thread_pool pool_;                     // last: its workers stop before the scratch goes
};

}  // namespace

namespace {

status parse_env(const char* name, std::initializer_list<std::string_view> accepted,
                 std::string& value) {
  const char* raw = std::getenv(name);
  value = raw ? raw : "";
  if (value.empty()) return status::ok();
  for (auto a : accepted)
    if (value == a) return status::ok();
  std::string list;
  for (auto a : accepted) list += (list.empty() ? "" : ", ") + std::string{a};
  return invalid("cpu backend options",
                 std::string{name} + "='" + value + "' is not one of: " + list);
}

}  // namespace

status cpu_backend_options::from_environment(cpu_backend_options& out) {
  cpu_backend_options o = out;
  std::string v;
  if (auto s = parse_env("BASTION_CPU_KERNELS", {"auto", "scalar", "avx2"}, v); !s) return s;
  if (v == "scalar") o.kernels = cpu_kernel_set::scalar;
  if (v == "avx2") o.kernels = cpu_kernel_set::avx2;
  if (v == "auto") o.kernels = cpu_kernel_set::automatic;
  if (auto s = parse_env("BASTION_CPU_NUMERICS", {"exact", "int8"}, v); !s) return s;
  if (v == "exact") o.numerics = cpu_matmul_numerics::exact_f32;
  if (v == "int8") o.numerics = cpu_matmul_numerics::int8_activations;
  if (const char* t = std::getenv("BASTION_CPU_THREADS"); t && *t) {
    char* end = nullptr;
    const long n = std::strtol(t, &end, 10);
    if (*end != '\0' || n < 0 || n > cpu::thread_pool::threads_max)
      return invalid("cpu backend options",
                     std::string{"BASTION_CPU_THREADS='"} + t + "' is not a thread count in [0, " +
                         std::to_string(cpu::thread_pool::threads_max) + "]");
    o.threads = static_cast<int>(n);
  }
  out = o;
  return status::ok();
}

bool cpu_has_avx2_kernels() noexcept { return cpu::avx2_supported(); }

std::string_view cpu_kernel_set_name(cpu_kernel_set set) noexcept {
  switch (set) {
    case cpu_kernel_set::scalar:
      return "scalar";
    case cpu_kernel_set::avx2:
      return "avx2";
    case cpu_kernel_set::automatic:
      break;
  }
  return cpu::avx2_supported() ? "avx2" : "scalar";
}

status make_cpu_backend(const cpu_backend_options& options, std::unique_ptr<backend>& out) {
  if (options.threads < 0 || options.threads > cpu::thread_pool::threads_max)
    return invalid("make_cpu_backend", "threads = " + std::to_string(options.threads) +
                                           " is outside [0, " +
                                           std::to_string(cpu::thread_pool::threads_max) + "]");
  if (options.kernels == cpu_kernel_set::avx2 && !cpu::avx2_supported())
    return {status_code::unsupported,
            "make_cpu_backend: the AVX2 kernels were asked for, but this CPU lacks AVX2, FMA or "
            "F16C"};
  const bool avx2 = options.kernels == cpu_kernel_set::avx2 ||
                    (options.kernels == cpu_kernel_set::automatic && cpu::avx2_supported());
  int threads = options.threads;
  if (threads == 0)
    threads = std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1,
                         cpu::thread_pool::threads_max);
  out = std::make_unique<cpu_backend>(avx2 ? cpu::avx2_kernels() : cpu::scalar_kernels(), threads,
                                      options.numerics, options.repack_weights);
  return status::ok();
}

// A process whose environment names a kernel set or thread count that cannot be had is
// misconfigured; there is no status to return here, so it stops with the reason.
std::unique_ptr<backend> make_cpu_backend() {
  cpu_backend_options options;
  std::unique_ptr<backend> be;
  status s = cpu_backend_options::from_environment(options);
  if (s) s = make_cpu_backend(options, be);
  if (!s) {
    std::fprintf(stderr, "bastion: %s\n", s.message().c_str());
    std::abort();
  }
  return be;
}

std::string_view cpu_gemm_provider() noexcept {
#ifdef BASTION_HAVE_OPENBLAS
  return "openblas";
#else
  return "builtin";
#endif
}

}  // namespace bastion::kernels
