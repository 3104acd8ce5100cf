#include "kernels/backend.hpp"

#include <algorithm>
#include <cmath>
#include <string>
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

// x . w over k floats in a fixed summation order (eight interleaved partial sums), so a
// product does not depend on how many rows were computed with it.
float dot(const float* x, const float* w, std::int64_t k) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::int64_t p = 0;
  for (; p + 8 <= k; p += 8)
    for (int u = 0; u < 8; ++u) acc[u] += x[p + u] * w[p + u];
  for (; p < k; ++p) acc[0] += x[p] * w[p];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// y[i * ldy + j] = x[i] . w[j] for i < m, j < n: an F32 tile product written into a wider y.
// Deterministic per element: batching sequences together gives the same bits as running them
// alone (OpenBLAS picks kernels by shape, so it is used only by matmul_f32).
void gemm_tile(const float* x, const float* w, float* y, std::int64_t m, std::int64_t n,
               std::int64_t k, std::int64_t ldy) {
  // Blocked over outputs so a few weight rows stay in cache while every input row uses them.
  constexpr std::int64_t block_n = 16;
  for (std::int64_t j0 = 0; j0 < n; j0 += block_n) {
    const std::int64_t j1 = std::min(n, j0 + block_n);
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = j0; j < j1; ++j) y[i * ldy + j] = dot(x + i * k, w + j * k, k);
  }
}

class cpu_backend final : public backend {
 public:
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
    gemm_tile(x, w, y, m, n, k, n);
#endif
    return status::ok();
  }

  // Reference path: dequantize a tile of weight rows to F32, then an F32 tile product. The
  // whole weight is never converted at once, so memory stays at tile_rows x k floats.
  status matmul(const float* x, const weight_view& w, float* y, std::int64_t m) override {
    if (auto s = check_weight(w, "matmul"); !s) return s;
    if (auto s = check_shape(x, w.data, y, m, w.rows, w.cols, "matmul"); !s) return s;
    if (m == 0 || w.rows == 0) return status::ok();
    constexpr std::int64_t tile_rows = 64;
    const std::int64_t k = w.cols;
    const std::uint64_t stride = *row_bytes(w.type, static_cast<std::uint64_t>(k));
    tile_.resize(static_cast<std::size_t>(tile_rows * k));
    const auto* base = static_cast<const std::uint8_t*>(w.data);
    for (std::int64_t j0 = 0; j0 < w.rows; j0 += tile_rows) {
      const std::int64_t nt = std::min(tile_rows, w.rows - j0);
      for (std::int64_t j = 0; j < nt; ++j)
        dequantize_row(w.type, base + static_cast<std::uint64_t>(j0 + j) * stride,
                       tile_.data() + j * k, k);
      gemm_tile(x, tile_.data(), y + j0, m, nt, k, w.rows);
    }
    return status::ok();
  }

  status embed_rows(const weight_view& table, const std::int32_t* ids, std::int64_t n,
                    float* out) override {
    if (auto s = check_weight(table, "embed_rows"); !s) return s;
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
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * dim;
      float* yr = y + r * dim;
      double sum_sq = 0.0;  // double: long rows of large activations lose precision in float
      for (std::int64_t i = 0; i < dim; ++i)
        sum_sq += static_cast<double>(xr[i]) * static_cast<double>(xr[i]);
      const float scale = static_cast<float>(
          1.0 / std::sqrt(sum_sq / static_cast<double>(dim) + static_cast<double>(eps)));
      for (std::int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * scale * weight[i];
    }
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
    for (std::int64_t i = 0; i < n; ++i) y[i] += x[i];
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
    const std::int64_t half = rope.rot_dim / 2;
    inv_freq_.resize(static_cast<std::size_t>(half));
    for (std::int64_t i = 0; i < half; ++i)
      inv_freq_[static_cast<std::size_t>(i)] =
          std::pow(static_cast<double>(rope.base),
                   -2.0 * static_cast<double>(i) / static_cast<double>(rope.rot_dim));
    for (std::int64_t t = 0; t < tokens; ++t) {
      if (positions[t] < 0) return invalid("rope_f32", "negative position");
      for (std::int64_t i = 0; i < half; ++i) {
        const double angle =
            static_cast<double>(positions[t]) * inv_freq_[static_cast<std::size_t>(i)];
        const float c = static_cast<float>(std::cos(angle));
        const float s = static_cast<float>(std::sin(angle));
        const std::int64_t a = rope.style == rope_style::adjacent_pairs ? 2 * i : i;
        const std::int64_t b = rope.style == rope_style::adjacent_pairs ? 2 * i + 1 : i + half;
        for (std::int64_t h = 0; h < heads; ++h) {
          float* xh = x + (t * heads + h) * head_dim;
          const float x0 = xh[a], x1 = xh[b];
          xh[a] = x0 * c - x1 * s;
          xh[b] = x0 * s + x1 * c;
        }
      }
    }
    return status::ok();
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
    const std::int64_t group = b.n_heads / b.n_kv_heads;
    const std::int64_t hd = b.head_dim;
    for (std::int64_t t = 0; t < b.n_tokens; ++t) {
      const std::int32_t s = b.token_seq[t];
      const std::int64_t pos = b.positions[t];
      if (s < 0 || s >= b.n_seqs) return invalid(op, "token sequence index out of range");
      const std::int32_t* blocks = b.block_table + b.seq_block_begin[s];
      const std::int64_t n_blocks = b.seq_block_begin[s + 1] - b.seq_block_begin[s];
      if (pos < 0 || pos >= n_blocks * kv.block_tokens)
        return invalid(op, "position " + std::to_string(pos) + " beyond the sequence's blocks");
      const std::int64_t n_keys = pos + 1;
      slot_.resize(static_cast<std::size_t>(n_keys));
      for (std::int64_t j = 0; j < n_keys; ++j) {
        const std::int32_t block = blocks[j / kv.block_tokens];
        if (block < 0 || block >= kv.blocks) return invalid(op, "block id outside the pool");
        slot_[static_cast<std::size_t>(j)] = block * kv.block_tokens + j % kv.block_tokens;
      }
      scores_.resize(static_cast<std::size_t>(n_keys));
      for (std::int64_t h = 0; h < b.n_heads; ++h) {
        const float* qh = q + (t * b.n_heads + h) * hd;
        const std::int64_t kv_off = (h / group) * hd;
        float max_score = -INFINITY;
        for (std::int64_t j = 0; j < n_keys; ++j) {
          const float* kj = kv.k + slot_[static_cast<std::size_t>(j)] * kv.kv_dim + kv_off;
          float dot = 0.0f;
          for (std::int64_t d = 0; d < hd; ++d) dot += qh[d] * kj[d];
          scores_[static_cast<std::size_t>(j)] = dot * b.scale;
          max_score = std::max(max_score, dot * b.scale);
        }
        float sum = 0.0f;
        for (auto& sc : scores_) sum += (sc = std::exp(sc - max_score));
        float* oh = out + (t * b.n_heads + h) * hd;
        std::fill_n(oh, hd, 0.0f);
        for (std::int64_t j = 0; j < n_keys; ++j) {
          const float w = scores_[static_cast<std::size_t>(j)] / sum;
          const float* vj = kv.v + slot_[static_cast<std::size_t>(j)] * kv.kv_dim + kv_off;
          for (std::int64_t d = 0; d < hd; ++d) oh[d] += w * vj[d];
        }
      }
    }
    return status::ok();
  }

  status silu_mul_f32(const float* gate, const float* up, float* out, std::int64_t n) override {
    if (auto s = check_shape(gate, up, out, n, 1, 1, "silu_mul_f32"); !s) return s;
    for (std::int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
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
  std::vector<float> tile_;         // matmul: dequantized weight rows
  std::vector<double> inv_freq_;    // rope: per-pair frequencies
  std::vector<std::int64_t> slot_;  // attention: slot of each key of the current query
  std::vector<float> scores_;       // attention: scores of the current query head
};

}  // namespace

std::unique_ptr<backend> make_cpu_backend() { return std::make_unique<cpu_backend>(); }

std::string_view cpu_gemm_provider() noexcept {
#ifdef BASTION_HAVE_OPENBLAS
  return "openblas";
#else
  return "builtin";
#endif
}

}  // namespace bastion::kernels
