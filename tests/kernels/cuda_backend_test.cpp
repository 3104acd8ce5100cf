// CUDA backend against the CPU reference, one case per operation. Plain main (no Catch2) so
// it builds on a GPU machine with the CUDA toolkit alone. Exits 77 (CTest SKIP_RETURN_CODE)
// with the reason when no device is usable.

#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/backend.hpp"
#include "tests/support/numeric.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

using bastion::test::normalised_error;
using bastion::test::random_vector;

namespace {

int passed = 0, failed = 0;

void check(bool ok, const std::string& what, double err = 0.0) {
  std::printf("%s %s (normalised error %.3g)\n", ok ? "PASS" : "FAIL", what.c_str(), err);
  (ok ? passed : failed)++;
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
    if (s) s = gpu->synchronize();
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
    if (s) s = gpu->synchronize();
    double err = s ? normalised_error(dy.read(rows * dim), ref) : 1.0;
    if (!s) std::printf("  %s\n", s.message().c_str());
    check(s && err < 1e-5, "rmsnorm_f32 5x576", err);
  }
  {  // memory: zeroed allocations, an upload/download round trip, a refused host KV cache
    void* p = nullptr;
    auto s = gpu->allocate(4096, p);
    std::vector<unsigned char> back(4096, 0xff);
    if (s) s = gpu->download(back.data(), p, back.size());
    check(s && std::all_of(back.begin(), back.end(), [](unsigned char b) { return b == 0; }),
          "allocate returns zeroed device memory");
    std::vector<unsigned char> data(4096);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<unsigned char>(i * 7);
    if (s) s = gpu->upload(p, data.data(), data.size());
    if (s) s = gpu->download(back.data(), p, back.size());
    check(s && back == data, "upload then download round-trips 4096 bytes");
    gpu->deallocate(p);
    void* huge = nullptr;
    auto oom = gpu->allocate(std::size_t{1} << 50, huge);
    check(!oom && oom.code() == bastion::kernels::status_code::out_of_memory && !huge,
          "a 1 PiB allocation is out_of_memory, not a crash: " + oom.message());
  }
  {
    bastion::kernels::cuda::device_health h;
    auto s = bastion::kernels::cuda::probe_device(0, h);
    std::printf("  device 0: %.1f of %.1f GiB free, responsive %d\n",
                static_cast<double>(h.memory_free_bytes) / (1 << 30),
                static_cast<double>(h.memory_total_bytes) / (1 << 30), h.responsive ? 1 : 0);
    check(s && h.responsive && h.memory_total_bytes > 0,
          "probe_device reports memory and a round trip");
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
