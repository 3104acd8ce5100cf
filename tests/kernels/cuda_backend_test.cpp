// CUDA backend against the CPU reference, one case per operation. Plain main (no Catch2) so
// it builds on a GPU machine with the CUDA toolkit alone. Exits 77 (CTest SKIP_RETURN_CODE)
// with the reason when no device is usable.

#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/backend.hpp"

#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace {

int passed = 0, failed = 0;

void check(bool ok, const char* what, double err = 0.0) {
  std::printf("%s %s (normalised error %.3g)\n", ok ? "PASS" : "FAIL", what, err);
  (ok ? passed : failed)++;
}

double normalised_error(const std::vector<float>& a, const std::vector<float>& ref) {
  double num = 0.0, den = 1e-30;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(double{a[i]} - double{ref[i]}));
    den = std::max(den, std::abs(double{ref[i]}));
  }
  return num / den;
}

struct device_buffer {
  float* ptr = nullptr;
  explicit device_buffer(const std::vector<float>& host) {
    if (cudaMalloc(&ptr, host.size() * sizeof(float)) == cudaSuccess)
      cudaMemcpy(ptr, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice);
  }
  ~device_buffer() { cudaFree(ptr); }
  std::vector<float> read(std::size_t n) const {
    std::vector<float> out(n);
    cudaMemcpy(out.data(), ptr, n * sizeof(float), cudaMemcpyDeviceToHost);
    return out;
  }
};

std::vector<float> random_vector(std::size_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist{0.0f, 1.0f};
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

}  // namespace

int main() {
  std::vector<bastion::kernels::cuda::device_info> devices;
  auto st = bastion::kernels::cuda::list_devices(devices);
  if (!st || devices.empty()) {
    std::printf("SKIP: no usable CUDA device: %s\n",
                st ? "the driver reports 0 devices" : st.message().c_str());
    return 77;
  }
  std::printf("device: %s (sm_%d%d)\n", devices[0].name.c_str(), devices[0].compute_major,
              devices[0].compute_minor);
  std::unique_ptr<bastion::kernels::backend> gpu;
  if (auto s = bastion::kernels::cuda::make_cuda_backend(0, gpu); !s) {
    std::printf("FAIL backend init: %s\n", s.message().c_str());
    return 1;
  }
  auto cpu = bastion::kernels::make_cpu_backend();
  std::mt19937 rng{5};

  {
    const int m = 7, n = 96, k = 576;
    auto x = random_vector(m * k, rng), w = random_vector(n * k, rng);
    std::vector<float> ref(m * n);
    (void)cpu->matmul_f32(x.data(), w.data(), ref.data(), m, n, k);
    device_buffer dx{x}, dw{w}, dy{std::vector<float>(m * n)};
    auto s = gpu->matmul_f32(dx.ptr, dw.ptr, dy.ptr, m, n, k);
    double err = s ? normalised_error(dy.read(m * n), ref) : 1.0;
    if (!s) std::printf("  %s\n", s.message().c_str());
    check(s && err < 1e-4, "matmul_f32 7x96x576", err);
  }
  {
    const int rows = 5, dim = 576;
    auto x = random_vector(rows * dim, rng), w = random_vector(dim, rng);
    std::vector<float> ref(rows * dim);
    (void)cpu->rmsnorm_f32(x.data(), w.data(), ref.data(), rows, dim, 1e-5f);
    device_buffer dx{x}, dw{w}, dy{std::vector<float>(rows * dim)};
    auto s = gpu->rmsnorm_f32(dx.ptr, dw.ptr, dy.ptr, rows, dim, 1e-5f);
    double err = s ? normalised_error(dy.read(rows * dim), ref) : 1.0;
    if (!s) std::printf("  %s\n", s.message().c_str());
    check(s && err < 1e-5, "rmsnorm_f32 5x576", err);
  }
  {
    float* bogus = nullptr;
    auto s = gpu->rmsnorm_f32(bogus, bogus, bogus, 1, 4, 1e-5f);
    check(!s && s.code() == bastion::kernels::status_code::invalid_argument,
          "null pointers give invalid_argument");
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
