#pragma once
// Load-time quantization (the design's INT8 cost option): the F32, F16 and BF16 weight
// matrices of a loaded model become Q8_0, which halves (F16/BF16) or quarters (F32) the bytes
// every decode step reads and lets the CPU backend use integer products. Norm weights and
// biases stay F32. Measured effect: tests/kernels/cpu_requantize_test.cpp.

#include "kernels/model/model.hpp"

namespace bastion::kernels {

struct requantize_report {
  std::int64_t matrices = 0;       // matrices converted (a tied output counts once)
  std::uint64_t bytes_before = 0;  // of the converted matrices
  std::uint64_t bytes_after = 0;
};

/// Converts in place every matrix of `m` stored as F32, F16 or BF16 whose rows are whole
/// 32-element blocks; others (already quantized, or cols % 32 != 0) are left as they are.
/// The new bytes are owned by m.storage; a tied output keeps sharing the embedding.
/// Errors: a matrix with non-finite values (invalid_argument, naming it and the row), or no
/// memory for the copy (out_of_memory); on error `m` is unchanged.
status requantize_to_q8_0(model& m, requantize_report* report = nullptr);

}  // namespace bastion::kernels
