#pragma once
// CPU backend options: how many threads, which instruction set, and which numerics the matrix
// products of quantized weights use. `make_cpu_backend()` (backend.hpp) is
// make_cpu_backend(cpu_backend_options::from_environment()).

#include "kernels/backend.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace bastion::kernels {

/// Which kernels run. `automatic` picks AVX2 when the CPU has AVX2, FMA and F16C (checked at
/// run time: the binary also runs on CPUs without them), scalar otherwise.
enum class cpu_kernel_set { automatic, scalar, avx2 };

/// How a product with a quantized weight (Q8_0, Q4_0, Q4_1) treats the F32 activations.
enum class cpu_matmul_numerics {
  /// Weights dequantized to F32, F32 products: the numerics of transformers on the dequantized
  /// model (tests/fixtures/smollm2-transformers.json). The reference.
  exact_f32,
  /// Activations quantized to 8 bits per 32-element block (scale = max|x| / 127), integer dot
  /// products with the weight blocks: llama.cpp's numerics, several times less work. Logits
  /// move by up to ~1 on SmolLM2 (magnitude ~30) against exact_f32.
  int8_activations,
};

struct cpu_backend_options {
  /// Threads that run one operation, the caller's included. 0: std::thread::hardware_concurrency.
  int threads = 0;
  cpu_kernel_set kernels = cpu_kernel_set::automatic;
  cpu_matmul_numerics numerics = cpu_matmul_numerics::exact_f32;
  /// With int8 numerics and the AVX2 kernels: offer the engine eight-row copies of the
  /// quantized matrices (backend::repack_weight), which those kernels read as one stream.
  /// Costs a second copy of those matrices in memory (the file's pages stay mapped but go
  /// unread). The scalar kernels read the stored layout and get no copy whatever this says.
  bool repack_weights = true;

  /// The options the environment asks for, on top of the defaults:
  ///   BASTION_CPU_KERNELS = auto | scalar | avx2
  ///   BASTION_CPU_THREADS = N (0 or unset: all cores)
  ///   BASTION_CPU_NUMERICS = exact | int8
  /// An unknown value is an error naming the variable, the value and the accepted ones.
  static status from_environment(cpu_backend_options& out);
};

/// Fails (invalid_argument / unsupported) for threads < 0 or > 256, or kernels = avx2 on a
/// CPU without AVX2+FMA+F16C; the message says which.
status make_cpu_backend(const cpu_backend_options& options, std::unique_ptr<backend>& out);

/// True when this CPU can run the AVX2 kernels (AVX2, FMA and F16C).
bool cpu_has_avx2_kernels() noexcept;

/// "scalar" or "avx2": what `automatic` resolves to on this CPU, or what was forced.
std::string_view cpu_kernel_set_name(cpu_kernel_set set) noexcept;

}  // namespace bastion::kernels
