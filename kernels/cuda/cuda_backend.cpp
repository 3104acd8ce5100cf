#include "kernels/cuda/cuda_backend.hpp"

#include "kernels/cuda/add.hpp"
#include "kernels/cuda/argmax.hpp"
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device_pool.hpp"
#include "kernels/cuda/embed_rows.hpp"
#include "kernels/cuda/error_bits.hpp"
#include "kernels/cuda/gemm.hpp"
#include "kernels/cuda/kv_write.hpp"
#include "kernels/cuda/paged_attention.hpp"
#include "kernels/cuda/repetition_penalty.hpp"
#include "kernels/cuda/rmsnorm.hpp"
#include "kernels/cuda/rope.hpp"
#include "kernels/cuda/sampling_candidates.hpp"
#include "kernels/cuda/silu_mul.hpp"
#include "kernels/cuda/softmax.hpp"
#include "kernels/engine/backend_buffer.hpp"

#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace bastion::kernels::cuda {
namespace {

// Freed device blocks the pool keeps for reuse.
constexpr std::size_t pool_cached_bytes_max = std::size_t{1} << 30;
// Recorded graphs kept (run_recorded); at the bound all are dropped and recording starts over.
// A decoder records one per decode batch shape, so a few dozen cover a serving mix.
constexpr std::size_t recordings_max = 64;
// Captures of one key that may fail before it runs unrecorded for good.
constexpr int recording_attempts_max = 3;

#define BASTION_CUDA_TRY(expr) \
  do {                         \
    status s_ = (expr);        \
    if (!s_) return s_;        \
  } while (0)

class cuda_backend final : public backend {
 public:
  explicit cuda_backend(int ordinal)
      : ordinal_(ordinal), name_("cuda:" + std::to_string(ordinal)), pool_(pool_cached_bytes_max) {}
  cuda_backend(const cuda_backend&) = delete;
  cuda_backend& operator=(const cuda_backend&) = delete;

  ~cuda_backend() override {
    // Teardown errors are not actionable here; the device may already be gone.
    (void)cudaSetDevice(ordinal_);
    if (stream_) (void)cudaStreamSynchronize(stream_);
    forget_recordings();
    scratch_ = {};
    penalty_tables_dev_.reset();
    if (error_word_) pool_.release(error_word_);
    if (blas_) (void)cublasDestroy(blas_);
    if (stream_) (void)cudaStreamDestroy(stream_);
  }

  status init() {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    BASTION_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    BASTION_CUBLAS_CHECK(cublasCreate(&blas_));
    BASTION_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    void* word = nullptr;
    BASTION_CUDA_TRY(pool_.allocate(sizeof(unsigned), word));
    error_word_ = static_cast<unsigned*>(word);
    BASTION_CUDA_CHECK(cudaMemsetAsync(error_word_, 0, sizeof(unsigned), stream_));
    BASTION_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return status::ok();
  }

  cudaStream_t stream() const noexcept { return stream_; }
  int ordinal() const noexcept { return ordinal_; }
  std::string_view name() const noexcept override { return name_; }

  // ---- memory ----
  bool uses_host_memory() const noexcept override { return false; }

  status allocate(std::size_t bytes, void*& out) override {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    BASTION_CUDA_TRY(pool_.allocate(bytes, out));
    BASTION_CUDA_CHECK(cudaMemsetAsync(out, 0, bytes, stream_));
    return status::ok();
  }
  void deallocate(void* p) noexcept override {
    (void)cudaSetDevice(ordinal_);
    pool_.release(p);
  }
  status upload(void* dst, const void* host_src, std::size_t bytes) override {
    if (bytes && (!dst || !host_src))
      return {status_code::invalid_argument, "upload: null pointer"};
    if (!bytes) return status::ok();
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    // From pageable memory this returns once the bytes are staged, so the caller may reuse
    // them; the copy is ordered before every later operation on the stream.
    BASTION_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
    return status::ok();
  }
  status download(void* host_dst, const void* src, std::size_t bytes) override {
    if (bytes && (!host_dst || !src))
      return {status_code::invalid_argument, "download: null pointer"};
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    if (bytes)
      BASTION_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    return synchronize();
  }
  status synchronize() override {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    BASTION_CUDA_CHECK(cudaStreamSynchronize(stream_));
    unsigned word = 0;
    BASTION_CUDA_CHECK(cudaMemcpy(&word, error_word_, sizeof word, cudaMemcpyDeviceToHost));
    if (word == 0) return status::ok();
    // On the stream, so that it is done before any kernel queued after this call can set a bit
    // (a plain cudaMemset runs on the legacy stream, unordered with this non-blocking one).
    BASTION_CUDA_CHECK(cudaMemsetAsync(error_word_, 0, sizeof(unsigned), stream_));
    std::string what;
    auto name = [&](unsigned bit, const char* text) {
      if (word & bit) what += (what.empty() ? "" : "; ") + std::string{text};
    };
    name(error_embed_id, "embed_rows: a token id outside the table");
    name(error_rope_position, "rope_f32: a negative position");
    name(error_kv_slot, "kv_write_f32: a slot outside the pool");
    name(error_attention_table,
         "paged_attention_f32: a sequence, position or block outside the batch or the pool");
    return {status_code::invalid_argument,
            name_ + ": operations since the last synchronize met bad table entries (" + what +
                "); their outputs are zero or unchanged"};
  }

  // ---- operations ----
  status matmul_f32(const float* x, const float* w, float* y, std::int64_t m, std::int64_t n,
                    std::int64_t k) override {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    return sgemm(blas_, x, w, y, m, n, k);
  }
  status matmul(const float* x, const weight_view& w, float* y, std::int64_t m) override {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    return matmul_weights(blas_, stream_, *this, scratch_, x, w, y, m);
  }
  status embed_rows(const weight_view& table, const std::int32_t* ids, std::int64_t n,
                    float* out) override {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    return cuda::embed_rows(table, ids, n, out, error_word_, stream_);
  }
  status rmsnorm_f32(const float* x, const float* weight, float* y, std::int64_t rows,
                     std::int64_t dim, float eps) override {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    return cuda::rmsnorm_f32(x, weight, y, rows, dim, eps, stream_);
  }
  status add_bias_f32(float* y, const float* bias, std::int64_t rows, std::int64_t dim) override {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    return cuda::add_bias_f32(y, bias, rows, dim, stream_);
  }
  status add_f32(float* y, const float* x, std::int64_t n) override {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    return cuda::add_f32(y, x, n, stream_);
  }
  status rope_f32(float* x, const std::int32_t* positions, std::int64_t tokens, std::int64_t heads,
                  std::int64_t head_dim, const rope_params& rope) override {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    return cuda::rope_f32(x, positions, tokens, heads, head_dim, rope, error_word_, stream_);
  }
  status kv_write_f32(const float* k, const float* v, const std::int32_t* slots,
                      std::int64_t tokens, const paged_kv_view& kv) override {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    return cuda::kv_write_f32(k, v, slots, tokens, kv, error_word_, stream_);
  }
  status paged_attention_f32(const float* q, const attention_batch& batch, const paged_kv_view& kv,
                             float* out) override {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    return cuda::paged_attention_f32(q, batch, kv, out, error_word_, stream_);
  }
  status silu_mul_f32(const float* gate, const float* up, float* out, std::int64_t n) override {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    return cuda::silu_mul_f32(gate, up, out, n, stream_);
  }
  status softmax_f32(float* x, std::int64_t rows, std::int64_t dim) override {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    return cuda::softmax_f32(x, rows, dim, stream_);
  }
  status argmax_rows_f32(const float* x, std::int64_t rows, std::int64_t dim,
                         std::int32_t* out) override {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    return cuda::argmax_rows_f32(x, rows, dim, out, stream_);
  }

  status sampling_candidates_f32(const float* x, std::int64_t rows, std::int64_t dim,
                                 const float* temperature, float window, std::int32_t capacity,
                                 candidate_summary* summaries, std::int32_t* ids,
                                 float* logits) override {
    if (auto st = check_sampling_candidates(x, rows, dim, temperature, window, capacity, summaries,
                                            ids, logits);
        !st || rows == 0)
      return st;
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    // One block from the pool for the temperatures in and everything out; 8-byte fields first.
    const auto r = static_cast<std::size_t>(rows);
    const std::size_t entries = r * static_cast<std::size_t>(capacity);
    const std::size_t total_at = 0, count_at = total_at + r * 8, best_at = count_at + r * 8,
                      temperature_at = best_at + r * 4, ids_at = temperature_at + r * 4,
                      logits_at = ids_at + entries * 4, bytes = logits_at + entries * 4;
    void* block = nullptr;
    BASTION_CUDA_TRY(pool_.allocate(bytes, block));
    auto* base = static_cast<unsigned char*>(block);
    status st = status::ok();
    auto copy = [&](void* dst, const void* src, std::size_t n, cudaMemcpyKind kind) {
      if (!st) return;
      if (const cudaError_t e = cudaMemcpyAsync(dst, src, n, kind, stream_); e != cudaSuccess)
        st = {status_code::device_error,
              std::string{"sampling_candidates_f32: cudaMemcpyAsync: "} + cudaGetErrorString(e)};
    };
    copy(base + temperature_at, temperature, r * 4, cudaMemcpyHostToDevice);
    if (st)
      st = cuda::sampling_candidates_f32(
          x, rows, dim, reinterpret_cast<const float*>(base + temperature_at), window, capacity,
          reinterpret_cast<float*>(base + best_at), reinterpret_cast<double*>(base + total_at),
          reinterpret_cast<long long*>(base + count_at),
          reinterpret_cast<std::int32_t*>(base + ids_at),
          reinterpret_cast<float*>(base + logits_at), stream_);
    // Everything comes back in one copy (the block is contiguous) and is split here: one
    // transfer's latency per step instead of five.
    staged_.resize(bytes);
    copy(staged_.data(), base, bytes, cudaMemcpyDeviceToHost);
    // Waits even after a failure: the block goes back to the pool only when nothing queued
    // can still write it.
    const status synced = synchronize();
    pool_.release(block);
    if (!st) return st;
    if (!synced) return synced;
    const unsigned char* back = staged_.data();
    for (std::size_t i = 0; i < r; ++i) {
      candidate_summary& out = summaries[i];
      std::memcpy(&out.total, back + total_at + i * 8, 8);
      std::memcpy(&out.count, back + count_at + i * 8, 8);
      std::memcpy(&out.best, back + best_at + i * 4, 4);
    }
    std::memcpy(ids, back + ids_at, entries * 4);
    std::memcpy(logits, back + logits_at, entries * 4);
    return status::ok();
  }

  status repetition_penalty_f32(float* x, std::int64_t rows, std::int64_t dim, const float* penalty,
                                const std::int32_t* token_begin,
                                const std::int32_t* tokens) override {
    if (auto st = check_repetition_penalty(x, rows, dim, penalty, token_begin, tokens);
        !st || rows == 0)
      return st;
    const auto r = static_cast<std::size_t>(rows);
    const auto n = static_cast<std::size_t>(token_begin[rows]);
    if (n == 0) return status::ok();  // no row has a token: nothing to change
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    // The tables in one upload, into a buffer kept across calls (each step makes one call):
    // the penalties, token_begin, then the tokens; 4-byte entries throughout.
    const std::size_t begin_at = r, tokens_at = begin_at + r + 1, entries = tokens_at + n;
    penalty_tables_.resize(entries);
    std::memcpy(penalty_tables_.data(), penalty, r * 4);
    std::memcpy(penalty_tables_.data() + begin_at, token_begin, (r + 1) * 4);
    std::memcpy(penalty_tables_.data() + tokens_at, tokens, n * 4);
    BASTION_CUDA_TRY(penalty_tables_dev_.reserve(this, entries * 4));
    BASTION_CUDA_TRY(upload(penalty_tables_dev_.data(), penalty_tables_.data(), entries * 4));
    const auto* dev = penalty_tables_dev_.as<std::int32_t>();
    return cuda::repetition_penalty_f32(x, rows, dim, reinterpret_cast<const float*>(dev),
                                        dev + begin_at, dev + tokens_at, stream_);
  }

  // ---- recordings: CUDA graphs captured from the stream ----
  status run_recorded(const recording_key& key, const std::function<status()>& enqueue) override {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    auto it = graphs_.find(key);
    if (it == graphs_.end()) {
      if (graphs_.size() >= recordings_max) forget_recordings();
      it = graphs_.emplace(key, recording{}).first;
    }
    recording& r = it->second;
    // A capture can be spoilt from outside (another thread synchronising the device while it
    // runs, say), so a refused key is tried again a few times before it runs unrecorded for
    // good: operation by operation, which reports a real failure as usual.
    if (!r.exec && r.refusals < recording_attempts_max) {
      record(enqueue, r.exec);
      if (!r.exec) {
        ++r.refusals;
        return enqueue();
      }
    }
    if (!r.exec) return enqueue();
    BASTION_CUDA_CHECK(cudaGraphLaunch(r.exec, stream_));
    return status::ok();
  }
  void forget_recordings() noexcept override {
    for (auto& [key, r] : graphs_)
      if (r.exec) (void)cudaGraphExecDestroy(r.exec);
    graphs_.clear();
  }

 private:
  // Captures what `enqueue` queues into `exec`. Whatever goes wrong while capturing (an
  // operation the runtime will not capture, an operation failing its own checks) leaves `exec`
  // null: the key then runs operation by operation, which reports a real failure as usual.
  void record(const std::function<status()>& enqueue, cudaGraphExec_t& exec) {
    exec = nullptr;
    if (cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
      (void)cudaGetLastError();
      return;
    }
    const status queued = enqueue();
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
    if (queued && ended == cudaSuccess && graph &&
        cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess)
      exec = nullptr;
    if (graph) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();  // clear a refused capture's error; it is not the caller's
  }

  int ordinal_;
  std::string name_;
  // Declared before the members whose memory it holds, so it is destroyed after them.
  device_pool pool_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  unsigned* error_word_ = nullptr;  // device: error_* bits set by kernels (error_bits.hpp)
  gemm_scratch scratch_;
  std::vector<unsigned char> staged_;  // sampling_candidates_f32's results, as they came back
  // repetition_penalty_f32's tables: packed on the host, then in device memory.
  std::vector<std::int32_t> penalty_tables_;
  backend_buffer penalty_tables_dev_;
  struct recording {
    cudaGraphExec_t exec = nullptr;  // null: not recorded (yet)
    int refusals = 0;                // captures of this key that failed
  };
  std::map<recording_key, recording> graphs_;
};

}  // namespace

status list_devices(std::vector<device_info>& out) {
  out.clear();
  int count = 0;
  BASTION_CUDA_CHECK(cudaGetDeviceCount(&count));
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    BASTION_CUDA_CHECK(cudaGetDeviceProperties(&prop, i));
    device_info d;
    d.ordinal = i;
    d.name = prop.name;
    d.compute_major = prop.major;
    d.compute_minor = prop.minor;
    d.memory_bytes = prop.totalGlobalMem;
    d.pci.domain = static_cast<std::uint32_t>(prop.pciDomainID);
    d.pci.bus = static_cast<std::uint32_t>(prop.pciBusID);
    d.pci.device = static_cast<std::uint32_t>(prop.pciDeviceID);
    out.push_back(std::move(d));
  }
  return status::ok();
}

status probe_device(int ordinal, device_health& out) {
  out = {};
  out.ordinal = ordinal;
  int previous = 0;
  BASTION_CUDA_CHECK(cudaGetDevice(&previous));
  BASTION_CUDA_CHECK(cudaSetDevice(ordinal));
  status result = [&]() -> status {
    BASTION_CUDA_CHECK(cudaMemGetInfo(&out.memory_free_bytes, &out.memory_total_bytes));
    void* p = nullptr;
    BASTION_CUDA_CHECK(cudaMalloc(&p, 256));
    const cudaError_t set = cudaMemset(p, 0x5a, 256);
    unsigned char back = 0;
    const cudaError_t get =
        set == cudaSuccess ? cudaMemcpy(&back, p, 1, cudaMemcpyDeviceToHost) : set;
    (void)cudaFree(p);
    BASTION_CUDA_CHECK(get);
    out.responsive = back == 0x5a;
    return status::ok();
  }();
  (void)cudaSetDevice(previous);
  return result;
}

status make_cuda_backend(int ordinal, std::unique_ptr<backend>& out) {
  auto b = std::make_unique<cuda_backend>(ordinal);
  if (auto s = b->init(); !s) return s;
  out = std::move(b);
  return status::ok();
}

status stream_of(backend& be, cudaStream_t& out) {
  auto* c = dynamic_cast<cuda_backend*>(&be);
  if (!c) return {status_code::invalid_argument, std::string{be.name()} + " is not a CUDA backend"};
  out = c->stream();
  return status::ok();
}

status ordinal_of(backend& be, int& out) {
  auto* c = dynamic_cast<cuda_backend*>(&be);
  if (!c) return {status_code::invalid_argument, std::string{be.name()} + " is not a CUDA backend"};
  out = c->ordinal();
  return status::ok();
}

}  // namespace bastion::kernels::cuda
