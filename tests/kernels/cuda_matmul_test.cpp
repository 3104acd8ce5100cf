// The CUDA backend's matmul in every stored weight type against the CPU reference: the
// dequantizing GEMV (m <= 8, F32 accumulation: tight bound) and the tensor-core GEMM path
// (m > 8: activations rounded to F16/BF16, so the bound is that rounding's). Odd row counts
// and a column count that is not a multiple of 8 (F32/F16/BF16) exercise the tails. The GEMV
// has a wide-load path (aligned x and rows, whole 8-element units) and a byte-load path for
// the rest: long rows, every m from 1 to 8 and x or W shifted off their alignment take both.

#include "kernels/cuda/quant_matmul.hpp"
#include "tests/kernels/cuda_test_support.hpp"

using namespace bastion;
using namespace bastion::test;
using kernels::tensor_type;

int main() {
  std::unique_ptr<kernels::backend> gpu;
  if (int rc = open_cuda(gpu); rc != 0) return rc;
  auto cpu = kernels::make_cpu_backend();
  cuda_checks c;
  std::mt19937 rng{7};

  struct shape {
    std::int64_t m, n, k;
  };
  for (auto type : all_weight_types) {
    const bool quant =
        type == tensor_type::q8_0 || type == tensor_type::q4_0 || type == tensor_type::q4_1;
    for (shape sh :
         {shape{1, 97, 576}, shape{3, 64, 320}, shape{8, 130, 96}, shape{9, 75, 576},
          shape{40, 257, 1536}, shape{1, 33, 100}, shape{20, 17, 100}, shape{1, 37, 8192},
          shape{2, 21, 2048}, shape{4, 66, 1024}, shape{5, 19, 4096}, shape{7, 9, 256}}) {
      if (quant && sh.k % 32 != 0) continue;
      const auto wf = random_vector(static_cast<std::size_t>(sh.n * sh.k), rng, 0.2f);
      const auto bytes = encode_weights(type, wf);
      const auto x = random_vector(static_cast<std::size_t>(sh.m * sh.k), rng);
      std::vector<float> want(static_cast<std::size_t>(sh.m * sh.n));
      const kernels::weight_view host_w{type, bytes.data(), sh.n, sh.k};
      if (!cpu->matmul(x.data(), host_w, want.data(), sh.m)) return 1;
      dev<std::uint8_t> dw{*gpu, bytes};
      dev<float> dx{*gpu, x}, dy{*gpu, std::vector<float>(want.size())};
      const kernels::weight_view dev_w{type, dw.ptr(), sh.n, sh.k};
      auto s = gpu->matmul(dx.ptr(), dev_w, dy.ptr(), sh.m);
      const double err = s ? normalised_error(dy.read(*gpu, want.size()), want) : 1.0;
      if (!s) std::printf("  %s\n", s.message().c_str());
      // GEMV: F32 sums in another order. GEMM: x rounded to F16 (2^-11) or BF16 (2^-8).
      const double bound = sh.m <= 8 || type == tensor_type::f32 ? 1e-5
                           : type == tensor_type::bf16           ? 2e-2
                                                                 : 3e-3;
      c.check(s && err < bound,
              "matmul " + type_name(type) + " m=" + std::to_string(sh.m) +
                  " n=" + std::to_string(sh.n) + " k=" + std::to_string(sh.k),
              err);
    }
  }
  // Off alignment: x one float past a 16-byte boundary (byte-load path), W moved by 2 bytes
  // (quantized rows stay on the wide path, reading each unit's bytes at the other word
  // parity; float rows fall back) and by 4 bytes.
  for (auto type : all_weight_types) {
    const std::int64_t n = 45, k = 512;
    for (std::int64_t m : {1, 3, 8}) {
      for (auto [x_shift, w_shift] : {std::pair{1, 0}, std::pair{0, 2}, std::pair{0, 4}}) {
        const auto wf = random_vector(static_cast<std::size_t>(n * k), rng, 0.2f);
        const auto bytes = encode_weights(type, wf);
        const auto x = random_vector(static_cast<std::size_t>(m * k), rng);
        std::vector<float> want(static_cast<std::size_t>(m * n));
        const kernels::weight_view host_w{type, bytes.data(), n, k};
        if (!cpu->matmul(x.data(), host_w, want.data(), m)) return 1;
        std::vector<std::uint8_t> shifted(static_cast<std::size_t>(w_shift), 0xa5);
        shifted.insert(shifted.end(), bytes.begin(), bytes.end());
        std::vector<float> x_shifted(static_cast<std::size_t>(x_shift), 1e30f);
        x_shifted.insert(x_shifted.end(), x.begin(), x.end());
        dev<std::uint8_t> dw{*gpu, shifted};
        dev<float> dx{*gpu, x_shifted}, dy{*gpu, std::vector<float>(want.size(), -7.0f)};
        const kernels::weight_view dev_w{type, dw.ptr() + w_shift, n, k};
        auto s = gpu->matmul(dx.ptr() + x_shift, dev_w, dy.ptr(), m);
        const double err = s ? normalised_error(dy.read(*gpu, want.size()), want) : 1.0;
        c.check(s && err < 1e-5,
                "matmul " + type_name(type) + " m=" + std::to_string(m) + " x shifted " +
                    std::to_string(x_shift) + " floats, W shifted " + std::to_string(w_shift) +
                    " bytes",
                err);
      }
    }
  }
  // Every GEMV variant (the benchmark's sweep; -1 is the byte-load kernel) on its own, so a
  // variant that is not the default is still right when a later sweep makes it one.
  cudaStream_t stream = nullptr;
  if (!kernels::cuda::stream_of(*gpu, stream)) return 1;
  for (auto type : all_weight_types) {
    for (shape sh : {shape{1, 37, 2048}, shape{3, 21, 1024}, shape{8, 13, 512}, shape{1, 5, 96}}) {
      const auto wf = random_vector(static_cast<std::size_t>(sh.n * sh.k), rng, 0.2f);
      const auto bytes = encode_weights(type, wf);
      const auto x = random_vector(static_cast<std::size_t>(sh.m * sh.k), rng);
      std::vector<float> want(static_cast<std::size_t>(sh.m * sh.n));
      const kernels::weight_view host_w{type, bytes.data(), sh.n, sh.k};
      if (!cpu->matmul(x.data(), host_w, want.data(), sh.m)) return 1;
      dev<std::uint8_t> dw{*gpu, bytes};
      dev<float> dx{*gpu, x};
      const kernels::weight_view dev_w{type, dw.ptr(), sh.n, sh.k};
      for (int variant = -1; variant < kernels::cuda::gemv_variants; ++variant) {
        dev<float> dy{*gpu, std::vector<float>(want.size(), -7.0f)};
        auto s = kernels::cuda::gemv_rows_variant(dx.ptr(), dev_w, dy.ptr(), sh.m, variant, stream);
        const double err = s ? normalised_error(dy.read(*gpu, want.size()), want) : 1.0;
        c.check(s && err < 1e-5,
                "gemv variant " + std::to_string(variant) + " " + type_name(type) +
                    " m=" + std::to_string(sh.m) + " n=" + std::to_string(sh.n) +
                    " k=" + std::to_string(sh.k),
                err);
      }
    }
  }
  {  // hostile: a quantized weight whose columns are not whole blocks
    dev<float> dx{*gpu, std::vector<float>(40)}, dy{*gpu, std::vector<float>(4)};
    const kernels::weight_view bad{tensor_type::q8_0, dx.ptr(), 2, 20};
    auto s = gpu->matmul(dx.ptr(), bad, dy.ptr(), 1);
    c.check(s.code() == kernels::status_code::invalid_argument,
            "Q8_0 weight of 20 columns is invalid_argument");
    const kernels::weight_view unknown{static_cast<tensor_type>(14), dx.ptr(), 2, 32};
    c.check(gpu->matmul(dx.ptr(), unknown, dy.ptr(), 1).code() == kernels::status_code::unsupported,
            "Q6_K weight is unsupported");
  }
  return c.finish();
}
