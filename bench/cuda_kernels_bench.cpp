// cuda_kernels_bench: the CUDA backend's operations against ceilings measured in the same run
// on the same device: RMSNorm's achieved bandwidth against a device-to-device cudaMemcpy (the
// practical memory-bandwidth limit), and F32 GEMM through the backend against a direct
// cublasSgemm call (the backend's overhead) and a cublasGemmEx BF16 run (the tensor-core
// ceiling). Prints the exact command and every setting.
//
//   build/bench/cuda_kernels_bench [rows=16384] [dim=8192] [gemm_n=8192]

#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/cuda/quant_matmul.hpp"
#include "kernels/quant/tensor_type.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <tuple>
#include <vector>

namespace {

#define BENCH_CHECK(call)                                                                       \
  do {                                                                                          \
    auto rc_ = (call);                                                                          \
    if (rc_ != 0) {                                                                             \
      std::fprintf(stderr, "%s failed (%d) at %s:%d\n", #call, static_cast<int>(rc_), __FILE__, \
                   __LINE__);                                                                   \
      std::exit(1);                                                                             \
    }                                                                                           \
  } while (0)

// Median milliseconds of `reps` timed runs after `warmup` untimed ones. Wall clock around
// the call and a device-wide synchronize: the backend queues on its own stream, which events
// on the legacy stream would not wait for.
double time_ms(const std::function<void()>& fn, int warmup = 3, int reps = 10) {
  for (int i = 0; i < warmup; ++i) fn();
  BENCH_CHECK(cudaDeviceSynchronize());
  std::vector<double> samples;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    BENCH_CHECK(cudaDeviceSynchronize());
    samples.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

void must(const bastion::kernels::status& st) {
  if (!st) std::exit((std::fprintf(stderr, "%s\n", st.message().c_str()), 1));
}

// GEMV (decode's matmul) timing: weights cycle through several copies so the 50 MB L2 does not
// serve them, and calls go back to back on the backend's stream between two events, so the
// figure is the kernel's own, not a launch plus a synchronize.
using bastion::kernels::cuda::gemv_variants;
constexpr int gemv_copies = 4;
constexpr int gemv_calls = 40;

void gemv_section(bastion::kernels::backend& gpu, int n, double copy_gbs) {
  using bastion::kernels::tensor_type;
  cudaStream_t stream = nullptr;
  must(bastion::kernels::cuda::stream_of(gpu, stream));
  std::mt19937_64 rng{5};
  // x and y for up to 8 rows; x random (normal), y written by every call.
  std::vector<float> hx(static_cast<std::size_t>(8) * static_cast<std::size_t>(n));
  std::normal_distribution<float> normal{0.0f, 1.0f};
  for (auto& v : hx) v = normal(rng);
  float *x = nullptr, *y = nullptr;
  BENCH_CHECK(cudaMalloc(&x, hx.size() * sizeof(float)));
  BENCH_CHECK(cudaMalloc(&y, static_cast<std::size_t>(8) * static_cast<std::size_t>(n) * 4));
  BENCH_CHECK(cudaMemcpy(x, hx.data(), hx.size() * sizeof(float), cudaMemcpyHostToDevice));
  cudaEvent_t start, stop;
  BENCH_CHECK(cudaEventCreate(&start));
  BENCH_CHECK(cudaEventCreate(&stop));
  for (auto [type, label] :
       {std::tuple{tensor_type::q4_0, "q4_0"}, std::tuple{tensor_type::q4_1, "q4_1"},
        std::tuple{tensor_type::q8_0, "q8_0"}, std::tuple{tensor_type::f16, "f16 "}}) {
    const std::size_t bytes = *bastion::kernels::row_bytes(type, static_cast<std::uint64_t>(n)) *
                              static_cast<std::size_t>(n);
    std::vector<std::uint8_t> host(bytes);
    for (auto& b : host) b = static_cast<std::uint8_t>(rng());
    if (type == tensor_type::f16)  // finite halves: clear the top exponent bit of each
      for (std::size_t i = 1; i < bytes; i += 2) host[i] &= 0xbf;
    std::vector<void*> copies(gemv_copies);
    for (auto& p : copies) {
      BENCH_CHECK(cudaMalloc(&p, bytes));
      BENCH_CHECK(cudaMemcpy(p, host.data(), bytes, cudaMemcpyHostToDevice));
    }
    for (int m : {1, 8}) {
      // Every variant (-1: the byte-load kernel), then the backend's own choice.
      for (int variant = -1; variant <= gemv_variants; ++variant) {
        const bool backend_choice = variant == gemv_variants;
        auto call = [&](int i) {
          const bastion::kernels::weight_view w{
              type, copies[static_cast<std::size_t>(i % gemv_copies)], n, n};
          if (backend_choice)
            must(gpu.matmul(x, w, y, m));
          else
            must(bastion::kernels::cuda::gemv_rows_variant(x, w, y, m, variant, stream));
        };
        for (int i = 0; i < gemv_copies; ++i) call(i);  // warm-up
        BENCH_CHECK(cudaEventRecord(start, stream));
        for (int i = 0; i < gemv_calls; ++i) call(i);
        BENCH_CHECK(cudaEventRecord(stop, stream));
        BENCH_CHECK(cudaEventSynchronize(stop));
        float ms = 0.0f;
        BENCH_CHECK(cudaEventElapsedTime(&ms, start, stop));
        must(gpu.synchronize());
        const double per_call_ms = static_cast<double>(ms) / gemv_calls;
        const double gbs = static_cast<double>(bytes) / per_call_ms / 1e6;
        const char* which = backend_choice ? "backend matmul"
                            : variant < 0  ? "byte loads    "
                                           : bastion::kernels::cuda::gemv_variant_names[variant];
        std::printf("gemv %s %dx%d m=%d %-14s: %7.1f GB/s of weights (%.2f of memcpy), %6.1f us\n",
                    label, n, n, m, which, gbs, gbs / copy_gbs, per_call_ms * 1e3);
      }
    }
    for (auto* p : copies) cudaFree(p);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(x);
  cudaFree(y);
}

}  // namespace

int main(int argc, char** argv) {
  const long rows = argc > 1 ? std::atol(argv[1]) : 16384;
  const long dim = argc > 2 ? std::atol(argv[2]) : 8192;
  const int n = argc > 3 ? std::atoi(argv[3]) : 8192;
  std::vector<bastion::kernels::cuda::device_info> devices;
  if (auto st = bastion::kernels::cuda::list_devices(devices); !st || devices.empty()) {
    std::printf("SKIP: no CUDA device: %s\n", st ? "0 devices" : st.message().c_str());
    return 77;
  }
  std::printf("command: %s %ld %ld %d\n", argv[0], rows, dim, n);
  std::printf("device: %s (sm_%d%d, %zu MiB)\n", devices[0].name.c_str(), devices[0].compute_major,
              devices[0].compute_minor, devices[0].memory_bytes >> 20);
  std::unique_ptr<bastion::kernels::backend> gpu;
  if (auto st = bastion::kernels::cuda::make_cuda_backend(0, gpu); !st) {
    std::printf("backend init failed: %s\n", st.message().c_str());
    return 1;
  }

  // --- RMSNorm vs memcpy bandwidth ---
  const std::size_t elems = static_cast<std::size_t>(rows) * static_cast<std::size_t>(dim);
  float *x = nullptr, *y = nullptr, *w = nullptr;
  BENCH_CHECK(cudaMalloc(&x, elems * sizeof(float)));
  BENCH_CHECK(cudaMalloc(&y, elems * sizeof(float)));
  BENCH_CHECK(cudaMalloc(&w, static_cast<std::size_t>(dim) * sizeof(float)));
  BENCH_CHECK(cudaMemset(x, 0, elems * sizeof(float)));
  BENCH_CHECK(cudaMemset(w, 0, static_cast<std::size_t>(dim) * sizeof(float)));
  const double bytes = 2.0 * static_cast<double>(elems) * sizeof(float);  // read x, write y
  const double copy_ms = time_ms(
      [&] { BENCH_CHECK(cudaMemcpy(y, x, elems * sizeof(float), cudaMemcpyDeviceToDevice)); });
  const double norm_ms = time_ms([&] { must(gpu->rmsnorm_f32(x, w, y, rows, dim, 1e-5f)); });
  const double copy_gbs = bytes / copy_ms / 1e6, norm_gbs = bytes / norm_ms / 1e6;
  std::printf("rmsnorm %ldx%ld f32        : %8.1f GB/s\n", rows, dim, norm_gbs);
  std::printf("device memcpy (baseline)   : %8.1f GB/s\n", copy_gbs);
  std::printf("ratio rmsnorm/memcpy       : %.2f\n", norm_gbs / copy_gbs);
  cudaFree(x);
  cudaFree(y);
  cudaFree(w);

  // --- GEMM: backend F32 vs direct cuBLAS F32 vs BF16 tensor cores ---
  const std::size_t nn = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
  float *a = nullptr, *b = nullptr, *c = nullptr;
  BENCH_CHECK(cudaMalloc(&a, nn * sizeof(float)));
  BENCH_CHECK(cudaMalloc(&b, nn * sizeof(float)));
  BENCH_CHECK(cudaMalloc(&c, nn * sizeof(float)));
  BENCH_CHECK(cudaMemset(a, 0, nn * sizeof(float)));
  BENCH_CHECK(cudaMemset(b, 0, nn * sizeof(float)));
  const double flops = 2.0 * n * static_cast<double>(n) * n;
  const double backend_ms = time_ms([&] { must(gpu->matmul_f32(a, b, c, n, n, n)); });
  cublasHandle_t h;
  BENCH_CHECK(cublasCreate(&h));
  const float one = 1.0f, zero = 0.0f;
  const double sgemm_ms = time_ms([&] {
    BENCH_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &one, b, n, a, n, &zero, c, n));
  });
  void *ha = nullptr, *hb = nullptr;
  BENCH_CHECK(cudaMalloc(&ha, nn * 2));
  BENCH_CHECK(cudaMalloc(&hb, nn * 2));
  BENCH_CHECK(cudaMemset(ha, 0, nn * 2));
  BENCH_CHECK(cudaMemset(hb, 0, nn * 2));
  const double bf16_ms = time_ms([&] {
    BENCH_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &one, hb, CUDA_R_16BF, n, ha,
                             CUDA_R_16BF, n, &zero, c, CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT));
  });
  std::printf("gemm %dx%dx%d f32 backend  : %8.1f TFLOP/s\n", n, n, n, flops / backend_ms / 1e9);
  std::printf("gemm f32 cublasSgemm direct: %8.1f TFLOP/s (backend/direct %.2f)\n",
              flops / sgemm_ms / 1e9, sgemm_ms / backend_ms);
  std::printf(
      "gemm bf16 cublasGemmEx     : %8.1f TFLOP/s (tensor-core ceiling; f32 backend is %.3f of "
      "it)\n",
      flops / bf16_ms / 1e9, bf16_ms / backend_ms);
  const double f16_ms = time_ms([&] {
    BENCH_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &one, hb, CUDA_R_16F, n, ha,
                             CUDA_R_16F, n, &zero, c, CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT));
  });
  std::printf("gemm f16 cublasGemmEx      : %8.1f TFLOP/s (cuBLAS's own F16 peak here)\n",
              flops / f16_ms / 1e9);
  // The backend's weight-type GEMMs: x is F32 and converted to F16/BF16 inside the call.
  const bastion::kernels::weight_view wf16{bastion::kernels::tensor_type::f16, hb, n, n};
  const double be_f16_ms = time_ms([&] { must(gpu->matmul(a, wf16, c, n)); });
  std::printf("gemm f16 backend matmul    : %8.1f TFLOP/s (%.2f of cuBLAS F16; includes x->F16)\n",
              flops / be_f16_ms / 1e9, f16_ms / be_f16_ms);
  const bastion::kernels::weight_view wbf16{bastion::kernels::tensor_type::bf16, hb, n, n};
  const double be_bf16_ms = time_ms([&] { must(gpu->matmul(a, wbf16, c, n)); });
  std::printf("gemm bf16 backend matmul   : %8.1f TFLOP/s (%.2f of cuBLAS BF16)\n",
              flops / be_bf16_ms / 1e9, bf16_ms / be_bf16_ms);
  // Quantized weights (zero bytes are valid blocks): prefill-sized m through dequantize + GemmEx.
  void* q = nullptr;
  const std::size_t q8_bytes = nn / 32 * 34;
  BENCH_CHECK(cudaMalloc(&q, q8_bytes));
  BENCH_CHECK(cudaMemset(q, 0, q8_bytes));
  const int pm = 512;
  const double pflops = 2.0 * pm * static_cast<double>(n) * n;
  for (auto [type, label] : {std::tuple{bastion::kernels::tensor_type::q4_0, "q4_0"},
                             std::tuple{bastion::kernels::tensor_type::q8_0, "q8_0"}}) {
    const bastion::kernels::weight_view wq{type, q, n, n};
    const double ms = time_ms([&] { must(gpu->matmul(a, wq, c, pm)); });
    std::printf("gemm %s backend m=%d     : %8.1f TFLOP/s (dequantize to F16 + GemmEx)\n", label,
                pm, pflops / ms / 1e9);
  }
  cudaFree(q);
  gemv_section(*gpu, n, copy_gbs);
  std::printf(
      "note: GEMM inputs are zeros (timing only), times wall clock per call + sync; GEMV weights "
      "are random bytes in %d rotating copies (more than L2 holds), timed with events over %d "
      "back-to-back calls\n",
      gemv_copies, gemv_calls);
  cublasDestroy(h);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  cudaFree(ha);
  cudaFree(hb);
  return 0;
}
