#pragma once
// A backend that forwards to a real one and fails every operation while it is broken: the
// fault a worker must survive (a device that errs for a while, then works again). Breaking and
// healing are atomic, so a test thread may flip them while a step thread runs. It can also
// hang: an operation that never returns until the test releases it (a hung device).

#include "kernels/backend.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <memory>
#include <string>

namespace bastion::test {

class flaky_backend final : public kernels::backend {
 public:
  explicit flaky_backend(std::unique_ptr<kernels::backend> inner) : inner_(std::move(inner)) {}

  void set_broken(bool broken) noexcept { broken_.store(broken); }
  /// Fails the next `n` operations, then works again.
  void fail_next(int n) noexcept { fail_next_.store(n); }
  /// While set, matmul_f32 succeeds with a wrong first value (a device that computes garbage).
  void set_corrupt(bool corrupt) noexcept { corrupt_.store(corrupt); }
  /// Operations refused while broken.
  int refused() const noexcept { return refused_.load(); }
  /// The next operation blocks, without returning, until release().
  void hang_next() noexcept { hang_next_.store(true); }
  /// Waits (real time) until an operation is blocked in the hang.
  bool wait_hanging(std::chrono::milliseconds limit = std::chrono::seconds{20}) {
    std::unique_lock<std::mutex> lock(hang_mutex_);
    return hang_changed_.wait_for(lock, limit, [&] { return hanging_ > 0; });
  }
  /// Lets every blocked operation return (and work), now and from now on.
  void release() {
    std::lock_guard<std::mutex> lock(hang_mutex_);
    released_ = true;
    hang_changed_.notify_all();
  }

  std::string_view name() const noexcept override { return inner_->name(); }
  kernels::status matmul_f32(const float* x, const float* w, float* y, std::int64_t m,
                             std::int64_t n, std::int64_t k) override {
    if (fault()) return refusal();
    auto st = inner_->matmul_f32(x, w, y, m, n, k);
    if (st && corrupt_.load() && inner_->uses_host_memory() && m > 0 && n > 0) y[0] += 1.0f;
    return st;
  }
  kernels::status matmul(const float* x, const kernels::weight_view& w, float* y,
                         std::int64_t m) override {
    return fault() ? refusal() : inner_->matmul(x, w, y, m);
  }
  kernels::status embed_rows(const kernels::weight_view& t, const std::int32_t* ids, std::int64_t n,
                             float* out) override {
    return fault() ? refusal() : inner_->embed_rows(t, ids, n, out);
  }
  kernels::status rmsnorm_f32(const float* x, const float* w, float* y, std::int64_t rows,
                              std::int64_t dim, float eps) override {
    return fault() ? refusal() : inner_->rmsnorm_f32(x, w, y, rows, dim, eps);
  }
  kernels::status add_bias_f32(float* y, const float* b, std::int64_t rows,
                               std::int64_t dim) override {
    return fault() ? refusal() : inner_->add_bias_f32(y, b, rows, dim);
  }
  kernels::status add_f32(float* y, const float* x, std::int64_t n) override {
    return fault() ? refusal() : inner_->add_f32(y, x, n);
  }
  kernels::status rope_f32(float* x, const std::int32_t* pos, std::int64_t tokens,
                           std::int64_t heads, std::int64_t head_dim,
                           const kernels::rope_params& rope) override {
    return fault() ? refusal() : inner_->rope_f32(x, pos, tokens, heads, head_dim, rope);
  }
  kernels::status kv_write_f32(const float* k, const float* v, const std::int32_t* slots,
                               std::int64_t tokens, const kernels::paged_kv_view& kv) override {
    return fault() ? refusal() : inner_->kv_write_f32(k, v, slots, tokens, kv);
  }
  kernels::status paged_attention_f32(const float* q, const kernels::attention_batch& b,
                                      const kernels::paged_kv_view& kv, float* out) override {
    return fault() ? refusal() : inner_->paged_attention_f32(q, b, kv, out);
  }
  kernels::status silu_mul_f32(const float* g, const float* u, float* out,
                               std::int64_t n) override {
    return fault() ? refusal() : inner_->silu_mul_f32(g, u, out, n);
  }
  kernels::status softmax_f32(float* x, std::int64_t rows, std::int64_t dim) override {
    return fault() ? refusal() : inner_->softmax_f32(x, rows, dim);
  }
  kernels::status argmax_rows_f32(const float* x, std::int64_t rows, std::int64_t dim,
                                  std::int32_t* out) override {
    return fault() ? refusal() : inner_->argmax_rows_f32(x, rows, dim, out);
  }
  kernels::status run_recorded(const recording_key& key,
                               const std::function<kernels::status()>& enqueue) override {
    return fault() ? refusal() : inner_->run_recorded(key, enqueue);
  }
  void forget_recordings() noexcept override { inner_->forget_recordings(); }
  bool uses_host_memory() const noexcept override { return inner_->uses_host_memory(); }
  kernels::status allocate(std::size_t bytes, void*& out) override {
    return fault() ? refusal() : inner_->allocate(bytes, out);
  }
  void deallocate(void* p) noexcept override { inner_->deallocate(p); }
  kernels::status upload(void* dst, const void* src, std::size_t bytes) override {
    return fault() ? refusal() : inner_->upload(dst, src, bytes);
  }
  kernels::status download(void* dst, const void* src, std::size_t bytes) override {
    return fault() ? refusal() : inner_->download(dst, src, bytes);
  }
  kernels::status synchronize() override { return fault() ? refusal() : inner_->synchronize(); }

 private:
  bool fault() noexcept {
    if (hang_next_.exchange(false)) {
      std::unique_lock<std::mutex> lock(hang_mutex_);
      ++hanging_;
      hang_changed_.notify_all();
      hang_changed_.wait(lock, [&] { return released_; });
      --hanging_;
    }
    int left = fail_next_.load();
    while (left > 0 && !fail_next_.compare_exchange_weak(left, left - 1)) {
    }
    if (!broken_.load() && left <= 0) return false;
    refused_.fetch_add(1);
    return true;
  }
  static kernels::status refusal() {
    return {kernels::status_code::device_error, "injected fault: the device is broken"};
  }

  std::unique_ptr<kernels::backend> inner_;
  std::atomic<bool> broken_{false};
  std::atomic<int> fail_next_{0};
  std::atomic<bool> corrupt_{false};
  std::atomic<int> refused_{0};
  std::atomic<bool> hang_next_{false};
  std::mutex hang_mutex_;
  std::condition_variable hang_changed_;
  int hanging_ = 0;        // under hang_mutex_
  bool released_ = false;  // under hang_mutex_
};

}  // namespace bastion::test
