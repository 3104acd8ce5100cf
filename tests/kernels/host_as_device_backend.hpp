#pragma once
// The CPU backend dressed as a device backend: every operation runs on the CPU, but it says
// its memory is not the host's, so the engine takes its device paths (logits left in backend
// memory, greedy tokens and sampling candidates sent back instead) on a machine without a
// GPU. Counts the sampling-candidate and repetition-penalty calls, the downloads it served, and
// the steps offered for recording (and recordings dropped).

#include "kernels/backend.hpp"
#include "kernels/cpu/cpu_backend.hpp"

#include <memory>

namespace bastion::test {

class host_as_device_backend final : public kernels::backend {
 public:
  std::string_view name() const noexcept override { return "host-as-device"; }
  bool uses_host_memory() const noexcept override { return false; }

  int candidate_calls = 0;
  int penalty_calls = 0;
  int downloads = 0;
  int recorded_runs = 0;  // run_recorded calls (each runs its operations at once: no replay)
  int forgets = 0;        // forget_recordings calls

  kernels::status matmul_f32(const float* x, const float* w, float* y, std::int64_t m,
                             std::int64_t n, std::int64_t k) override {
    return cpu_->matmul_f32(x, w, y, m, n, k);
  }
  kernels::status matmul(const float* x, const kernels::weight_view& w, float* y,
                         std::int64_t m) override {
    return cpu_->matmul(x, w, y, m);
  }
  kernels::status embed_rows(const kernels::weight_view& t, const std::int32_t* ids, std::int64_t n,
                             float* out) override {
    return cpu_->embed_rows(t, ids, n, out);
  }
  kernels::status rmsnorm_f32(const float* x, const float* w, float* y, std::int64_t rows,
                              std::int64_t dim, float eps) override {
    return cpu_->rmsnorm_f32(x, w, y, rows, dim, eps);
  }
  kernels::status add_bias_f32(float* y, const float* b, std::int64_t rows,
                               std::int64_t dim) override {
    return cpu_->add_bias_f32(y, b, rows, dim);
  }
  kernels::status add_f32(float* y, const float* x, std::int64_t n) override {
    return cpu_->add_f32(y, x, n);
  }
  kernels::status rope_f32(float* x, const std::int32_t* pos, std::int64_t tokens,
                           std::int64_t heads, std::int64_t head_dim,
                           const kernels::rope_params& rope) override {
    return cpu_->rope_f32(x, pos, tokens, heads, head_dim, rope);
  }
  kernels::status kv_write_f32(const float* k, const float* v, const std::int32_t* slots,
                               std::int64_t tokens, const kernels::paged_kv_view& kv) override {
    return cpu_->kv_write_f32(k, v, slots, tokens, kv);
  }
  kernels::status paged_attention_f32(const float* q, const kernels::attention_batch& b,
                                      const kernels::paged_kv_view& kv, float* out) override {
    return cpu_->paged_attention_f32(q, b, kv, out);
  }
  kernels::status silu_mul_f32(const float* g, const float* u, float* out,
                               std::int64_t n) override {
    return cpu_->silu_mul_f32(g, u, out, n);
  }
  kernels::status softmax_f32(float* x, std::int64_t rows, std::int64_t dim) override {
    return cpu_->softmax_f32(x, rows, dim);
  }
  kernels::status sampling_candidates_f32(const float* x, std::int64_t rows, std::int64_t dim,
                                          const float* temperature, float window,
                                          std::int32_t capacity,
                                          kernels::candidate_summary* summaries, std::int32_t* ids,
                                          float* logits) override {
    ++candidate_calls;
    return cpu_->sampling_candidates_f32(x, rows, dim, temperature, window, capacity, summaries,
                                         ids, logits);
  }
  kernels::status repetition_penalty_f32(float* x, std::int64_t rows, std::int64_t dim,
                                         const float* penalty, const std::int32_t* token_begin,
                                         const std::int32_t* tokens) override {
    ++penalty_calls;
    return cpu_->repetition_penalty_f32(x, rows, dim, penalty, token_begin, tokens);
  }
  kernels::status download(void* dst, const void* src, std::size_t bytes) override {
    ++downloads;
    return backend::download(dst, src, bytes);
  }
  kernels::status run_recorded(const recording_key& key,
                               const std::function<kernels::status()>& enqueue) override {
    ++recorded_runs;
    return backend::run_recorded(key, enqueue);
  }
  void forget_recordings() noexcept override { ++forgets; }

 private:
  std::unique_ptr<kernels::backend> cpu_ = kernels::make_cpu_backend();
};

}  // namespace bastion::test
