#include "kernels/cuda/cuda_backend.hpp"

#include "kernels/cuda/check.hpp"
#include "kernels/cuda/rmsnorm.hpp"

namespace bastion::kernels::cuda {
namespace {

class cuda_backend final : public backend {
 public:
  explicit cuda_backend(int ordinal)
      : ordinal_(ordinal), name_("cuda:" + std::to_string(ordinal)) {}
  cuda_backend(const cuda_backend&) = delete;
  cuda_backend& operator=(const cuda_backend&) = delete;

  ~cuda_backend() override {
    // Teardown errors are not actionable here; the device may already be gone.
    if (blas_) (void)cublasDestroy(blas_);
    if (stream_) (void)cudaStreamDestroy(stream_);
  }

  status init() {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    BASTION_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    BASTION_CUBLAS_CHECK(cublasCreate(&blas_));
    BASTION_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    return status::ok();
  }

  std::string_view name() const noexcept override { return name_; }

  status matmul_f32(const float* x, const float* w, float* y, std::int64_t m, std::int64_t n,
                    std::int64_t k) override {
    if (!x || !w || !y) return {status_code::invalid_argument, "matmul_f32: null pointer"};
    if (m < 0 || n < 0 || k < 0 || m > 0x7fffffff || n > 0x7fffffff || k > 0x7fffffff)
      return {status_code::invalid_argument, "matmul_f32: bad shape"};
    if (m == 0 || n == 0) return status::ok();
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    // Row-major y[m x n] = x[m x k] w[n x k]^T is column-major y^T[n x m] = w x^T, i.e.
    // cuBLAS C(n x m) = op(A)=w^T as stored (k x n col-major, transposed) * B = x^T (k x m).
    const float alpha = 1.0f, beta = 0.0f;
    BASTION_CUBLAS_CHECK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n),
                                     static_cast<int>(m), static_cast<int>(k), &alpha, w,
                                     static_cast<int>(k), x, static_cast<int>(k), &beta, y,
                                     static_cast<int>(n)));
    BASTION_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return status::ok();
  }

  status rmsnorm_f32(const float* x, const float* weight, float* y, std::int64_t rows,
                     std::int64_t dim, float eps) override {
    BASTION_CUDA_CHECK(cudaSetDevice(ordinal_));
    if (auto s = cuda::rmsnorm_f32(x, weight, y, rows, dim, eps, stream_); !s) return s;
    BASTION_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return status::ok();
  }

  // Operations the CUDA backend does not implement yet: the decoder needs the CPU backend.
  status matmul(const float*, const weight_view&, float*, std::int64_t) override {
    return not_yet("matmul");
  }
  status embed_rows(const weight_view&, const std::int32_t*, std::int64_t, float*) override {
    return not_yet("embed_rows");
  }
  status add_bias_f32(float*, const float*, std::int64_t, std::int64_t) override {
    return not_yet("add_bias_f32");
  }
  status add_f32(float*, const float*, std::int64_t) override { return not_yet("add_f32"); }
  status rope_f32(float*, const std::int32_t*, std::int64_t, std::int64_t, std::int64_t,
                  const rope_params&) override {
    return not_yet("rope_f32");
  }
  status kv_write_f32(const float*, const float*, const std::int32_t*, std::int64_t,
                      const paged_kv_view&) override {
    return not_yet("kv_write_f32");
  }
  status paged_attention_f32(const float*, const attention_batch&, const paged_kv_view&,
                             float*) override {
    return not_yet("paged_attention_f32");
  }
  status silu_mul_f32(const float*, const float*, float*, std::int64_t) override {
    return not_yet("silu_mul_f32");
  }
  status softmax_f32(float*, std::int64_t, std::int64_t) override { return not_yet("softmax_f32"); }

 private:
  status not_yet(const char* op) const {
    return {status_code::unsupported, name_ + ": " + op + " is not implemented on CUDA yet"};
  }

  int ordinal_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
};

}  // namespace

status list_devices(std::vector<device_info>& out) {
  out.clear();
  int count = 0;
  BASTION_CUDA_CHECK(cudaGetDeviceCount(&count));
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    BASTION_CUDA_CHECK(cudaGetDeviceProperties(&prop, i));
    out.push_back({i, prop.name, prop.major, prop.minor, prop.totalGlobalMem});
  }
  return status::ok();
}

status make_cuda_backend(int ordinal, std::unique_ptr<backend>& out) {
  auto b = std::make_unique<cuda_backend>(ordinal);
  if (auto s = b->init(); !s) return s;
  out = std::move(b);
  return status::ok();
}

}  // namespace bastion::kernels::cuda
