#pragma once
// The contract every execution backend implements (STYLE.md 4). The CPU backend is the
// reference: every other backend is tested against it with a normalised error bound.
//
// Layout conventions, shared by all backends:
// - Matrices are row-major. A weight matrix W of a linear layer with `n` outputs and `k`
//   inputs is stored as n rows of k values (the GGUF / PyTorch layout), so y = x * W^T.
// - Activations are F32, [tokens x width], rows contiguous.
// - Pointers point into memory the backend owns or understands (host memory for the CPU
//   backend, device memory for the CUDA backend).
// - One operation per function; each checks its arguments and returns a status, never aborts.
// - A backend instance is used by one thread at a time (it may keep scratch buffers).

#include "kernels/quant/tensor_type.hpp"
#include "kernels/sampling/candidates.hpp"
#include "kernels/sampling/repetition_penalty.hpp"
#include "kernels/status.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace bastion::kernels {

/// How a weight matrix's bytes are arranged.
enum class weight_layout {
  /// Rows back to back, each row_bytes(type, cols) bytes: the model file's layout.
  stored,
  /// The CPU backend's eight-row interleaved copy (kernels/cpu/cpu_kernels.hpp, pack_rows8),
  /// made by its repack_weight; only that backend's matmul reads it.
  cpu_rows8,
};

/// A weight matrix in its stored type: `rows` rows of `cols` elements, each row
/// row_bytes(type, cols) bytes, rows back to back (unless `layout` says otherwise). `cols` is a
/// multiple of the type's block. F32 rows may be unaligned (safetensors does not align);
/// backends must not assume alignment.
struct weight_view {
  tensor_type type = tensor_type::f32;
  const void* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  weight_layout layout = weight_layout::stored;
};

/// How rotary position embedding pairs the dimensions of a head.
enum class rope_style {
  /// Dimensions (2i, 2i+1) rotate together: llama.cpp's "normal" RoPE, which GGUF llama files
  /// expect (the converter permutes Q/K rows from the Hugging Face layout to match).
  adjacent_pairs,
  /// Dimensions (i, i + rot_dim/2) rotate together: Hugging Face's rotate_half, llama.cpp's
  /// "neox" RoPE (qwen2 in GGUF, every Hugging Face checkpoint).
  half_split,
};

/// Pair i (0 <= i < rot_dim/2) at position p turns by angle p * base^(-2i / rot_dim).
/// Dimensions rot_dim..head_dim-1 are left as they are.
struct rope_params {
  rope_style style = rope_style::half_split;
  std::int64_t rot_dim = 0;  // even, <= head_dim
  float base = 10000.0f;
};

/// One layer's paged KV storage. Token slot s (s = block * block_tokens + offset) holds its
/// key at k + s * kv_dim and its value at v + s * kv_dim, kv_dim = n_kv_heads * head_dim.
struct paged_kv_view {
  float* k = nullptr;
  float* v = nullptr;
  std::int64_t blocks = 0;
  std::int64_t block_tokens = 0;
  std::int64_t kv_dim = 0;
};

/// Which keys each query token sees. Query token t belongs to sequence token_seq[t] of this
/// batch and sits at position positions[t] of that sequence; it attends (causally) to the
/// sequence's keys at positions 0..positions[t], its own included. Sequence s owns the blocks
/// block_table[seq_block_begin[s] .. seq_block_begin[s+1]), in position order; the key at
/// position j lives in slot block_table[seq_block_begin[s] + j / block_tokens] * block_tokens
/// + j % block_tokens. Every key a query sees must already be written (kv_write_f32).
struct attention_batch {
  std::int64_t n_tokens = 0;
  std::int64_t n_heads = 0;
  std::int64_t n_kv_heads =
      0;  // divides n_heads; query head h reads kv head h / (n_heads / n_kv_heads)
  std::int64_t head_dim = 0;
  float scale = 1.0f;                       // scores are q.k * scale, usually 1/sqrt(head_dim)
  const std::int32_t* positions = nullptr;  // [n_tokens]
  const std::int32_t* token_seq = nullptr;  // [n_tokens]
  std::int64_t n_seqs = 0;
  const std::int32_t* seq_block_begin = nullptr;  // [n_seqs + 1]
  const std::int32_t* block_table = nullptr;      // [seq_block_begin[n_seqs]]
};

class backend {
 public:
  virtual ~backend() = default;

  /// Short stable name for logs and metrics: "cpu", "cuda:0", ...
  virtual std::string_view name() const noexcept = 0;

  /// y[m x n] = x[m x k] * w[n x k]^T, F32.
  virtual status matmul_f32(const float* x, const float* w, float* y, std::int64_t m,
                            std::int64_t n, std::int64_t k) = 0;

  /// y[m x w.rows] = x[m x w.cols] * W^T with W in its stored type (F32/F16/BF16/Q8_0/Q4_0/Q4_1).
  virtual status matmul(const float* x, const weight_view& w, float* y, std::int64_t m) = 0;

  /// Bytes of a copy of `w` that this backend's matmul reads faster than `w` itself; 0 (the
  /// default) when there is none. A host backend's resident weights hold such copies.
  virtual std::uint64_t repacked_bytes(const weight_view& w) const {
    (void)w;
    return 0;
  }
  /// Writes that copy of `w` to `dst` (repacked_bytes(w) bytes of this backend's memory, which
  /// must outlive the copy's use) and sets `out` to the view matmul takes in place of `w`.
  /// Only matmul reads the copy (embed_rows keeps reading `w`).
  virtual status repack_weight(const weight_view& w, void* dst, weight_view& out) {
    (void)w;
    (void)dst;
    (void)out;
    return {status_code::unsupported, std::string{name()} + ": no repacked weight layout"};
  }

  /// Products that share their input (a layer's q, k and v projections; its gate and up):
  /// ys[i] = matmul(x, ws[i], ys[i], m) for i < count, each output exactly what that call gives.
  /// REQUIRES: every ws[i].cols is x's width; no ys[i] overlaps x or another ys[j]. The default
  /// makes the calls in order (stopping at the first failure); a backend may share the input's
  /// preparation between them (the CPU backend quantizes x once for int8 numerics).
  virtual status matmul_shared_input(const float* x, const weight_view* ws, float* const* ys,
                                     int count, std::int64_t m) {
    for (int i = 0; i < count; ++i)
      if (status s = matmul(x, ws[i], ys[i], m); !s) return s;
    return status::ok();
  }

  /// out[i] = row ids[i] of `table` as F32, out is [n x table.cols]. Every id must be in
  /// [0, table.rows); an id outside is invalid_argument (and out is unspecified).
  virtual status embed_rows(const weight_view& table, const std::int32_t* ids, std::int64_t n,
                            float* out) = 0;

  /// Per row: y = x / sqrt(mean(x^2) + eps) * weight. x and y are [rows x dim]; may alias.
  virtual status rmsnorm_f32(const float* x, const float* weight, float* y, std::int64_t rows,
                             std::int64_t dim, float eps) = 0;

  /// y[r][i] += bias[i] for every row r of y [rows x dim].
  virtual status add_bias_f32(float* y, const float* bias, std::int64_t rows, std::int64_t dim) = 0;

  /// y[i] += x[i] for i < n (the residual connection). x and y may not overlap partially.
  virtual status add_f32(float* y, const float* x, std::int64_t n) = 0;

  /// Rotates x [tokens x heads x head_dim] in place; token t is at position positions[t] >= 0.
  virtual status rope_f32(float* x, const std::int32_t* positions, std::int64_t tokens,
                          std::int64_t heads, std::int64_t head_dim, const rope_params& rope) = 0;

  /// Stores token t's key k[t] and value v[t] (each kv.kv_dim floats) in slot slots[t].
  virtual status kv_write_f32(const float* k, const float* v, const std::int32_t* slots,
                              std::int64_t tokens, const paged_kv_view& kv) = 0;

  /// out[t][h] = softmax_j(q[t][h] . k_j * scale) weighted sum of v_j over the keys token t
  /// sees (attention_batch). q and out are [n_tokens x n_heads x head_dim].
  virtual status paged_attention_f32(const float* q, const attention_batch& batch,
                                     const paged_kv_view& kv, float* out) = 0;

  /// out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + e^-x); out may alias gate or up.
  virtual status silu_mul_f32(const float* gate, const float* up, float* out, std::int64_t n) = 0;

  /// Per row, in place: x = exp(x - max) / sum(exp(x - max)).
  virtual status softmax_f32(float* x, std::int64_t rows, std::int64_t dim) = 0;

  /// out[r] = the lowest index of row r's largest value (greedy sampling, std::max_element's
  /// choice); NaN entries are passed over. x [rows x dim], dim > 0; out [rows] (backend memory).
  /// The default runs on the host, for host backends; a device backend overrides it so that a
  /// greedy step need not download its logits.
  virtual status argmax_rows_f32(const float* x, std::int64_t rows, std::int64_t dim,
                                 std::int32_t* out) {
    if (rows < 0 || dim <= 0 || (rows > 0 && (!x || !out)))
      return {status_code::invalid_argument, "argmax_rows_f32: null pointer or bad shape"};
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* row = x + r * dim;
      std::int64_t at = 0;
      for (std::int64_t i = 1; i < dim; ++i)
        if (row[i] > row[at] || (row[at] != row[at] && row[i] == row[i])) at = i;
      out[r] = static_cast<std::int32_t>(at);
    }
    return status::ok();
  }

  /// For sampling without sending rows of logits back (kernels/sampling/candidates.hpp): for
  /// each row r of x [rows x dim] with temperature[r] > 0, scores s = x / temperature[r] (NaN
  /// as -inf); summaries[r] = {max s, sum of e^(s - max s), how many tokens have
  /// s >= max s - window}; min(count, capacity) of those tokens (all of them when they fit, an
  /// unspecified subset when not), in any order, go to
  /// ids[r * capacity ...] with their raw logits in logits[r * capacity ...]. Rows with
  /// temperature <= 0 get an empty summary. x is backend memory; temperature, summaries, ids
  /// and logits are host memory, and the call waits for the backend. The default runs on the
  /// host, for host backends.
  virtual status sampling_candidates_f32(const float* x, std::int64_t rows, std::int64_t dim,
                                         const float* temperature, float window,
                                         std::int32_t capacity, candidate_summary* summaries,
                                         std::int32_t* ids, float* logits) {
    return host_sampling_candidates(x, rows, dim, temperature, window, capacity, summaries, ids,
                                    logits);
  }

  /// The repetition penalty in place, for sampling without sending penalised rows back
  /// (kernels/sampling/repetition_penalty.hpp): for each row r of x [rows x dim], every token t
  /// of tokens[token_begin[r] .. token_begin[r+1]) with 0 <= t < dim gets
  /// x[r][t] = penalised_logit(x[r][t], penalty[r]); ids outside [0, dim) are passed over. A row
  /// with no tokens is left as it is. x is backend memory; penalty [rows] (finite, > 0),
  /// token_begin [rows + 1] (from 0, never falling) and tokens (ascending and distinct within a
  /// row) are host memory, read before the call returns; the work may still be queued (it is
  /// ordered before the backend's later operations). The default runs on the host, for host
  /// backends.
  virtual status repetition_penalty_f32(float* x, std::int64_t rows, std::int64_t dim,
                                        const float* penalty, const std::int32_t* token_begin,
                                        const std::int32_t* tokens) {
    return host_repetition_penalty(x, rows, dim, penalty, token_begin, tokens);
  }

  /// Recorded replay of a repeated sequence of operations (a device backend launches it as one
  /// graph instead of one launch per operation). The first time a backend that records meets
  /// `key` it records what `enqueue` queues and keeps the recording (a bounded number of them);
  /// later calls with an equal key replay it without calling `enqueue`. The default (and any
  /// backend that cannot record) calls `enqueue` every time.
  /// REQUIRES: for equal keys `enqueue` queues the same operations on the same pointers with the
  /// same sizes (only the contents of memory differ between replays: put everything that changes
  /// in device-resident tables and in the key), and it neither waits for the backend (download,
  /// synchronize) nor allocates; the memory a recording uses stays allocated while its key can
  /// recur (forget_recordings otherwise).
  using recording_key = std::vector<std::int64_t>;
  virtual status run_recorded(const recording_key& key, const std::function<status()>& enqueue) {
    (void)key;
    return enqueue();
  }
  /// Drops every recording (for example when the memory they use is freed).
  virtual void forget_recordings() noexcept {}

  // Memory the operations' pointers point into. The defaults are host memory, so a host
  // backend (the CPU one) needs nothing more; a device backend overrides all of them. Every
  // pointer an operation takes (activations, weights, KV storage and the int tables of
  // positions, slots and blocks) must be memory of this kind.

  /// True when the operations take ordinary host pointers (the caller's vectors work as-is).
  virtual bool uses_host_memory() const noexcept { return true; }

  /// `bytes` (> 0) of zeroed backend memory, aligned to memory_alignment; out_of_memory when
  /// it cannot be had. Free it with deallocate on the same backend.
  virtual status allocate(std::size_t bytes, void*& out) {
    const std::size_t rounded =
        (bytes + memory_alignment - 1) / memory_alignment * memory_alignment;
    out = bytes == 0 ? nullptr : std::aligned_alloc(memory_alignment, rounded);
    if (!out)
      return {status_code::out_of_memory,
              "host allocation of " + std::to_string(bytes) + " bytes failed"};
    std::memset(out, 0, rounded);
    return status::ok();
  }
  /// Returns memory from allocate; null is ignored.
  virtual void deallocate(void* p) noexcept { std::free(p); }

  /// Copies `bytes` from host memory into backend memory. The host bytes may be reused as soon
  /// as this returns.
  virtual status upload(void* dst, const void* host_src, std::size_t bytes) {
    if (bytes && (!dst || !host_src))
      return {status_code::invalid_argument, "upload: null pointer"};
    if (bytes) std::memcpy(dst, host_src, bytes);
    return status::ok();
  }
  /// Waits for the operations queued before it, then copies `bytes` of backend memory to the
  /// host. Reports failures of earlier asynchronous operations (a device backend's kernels run
  /// after their call returned).
  virtual status download(void* host_dst, const void* src, std::size_t bytes) {
    if (bytes && (!host_dst || !src))
      return {status_code::invalid_argument, "download: null pointer"};
    if (bytes) std::memcpy(host_dst, src, bytes);
    return status::ok();
  }
  /// Waits for every queued operation; reports a failure of any of them.
  virtual status synchronize() { return status::ok(); }

  static constexpr std::size_t memory_alignment = 256;
};

/// The CPU backend: OpenBLAS for F32 GEMM when built with it, a blocked fallback otherwise.
std::unique_ptr<backend> make_cpu_backend();

/// Which GEMM the CPU backend uses: "openblas" or "builtin".
std::string_view cpu_gemm_provider() noexcept;

}  // namespace bastion::kernels
