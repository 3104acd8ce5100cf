#pragma once
// Shared checks of the CUDA operations' host side: shapes that fit a launch, grid sizing.

#include "kernels/status.hpp"

#include <cstdint>
#include <string>

namespace bastion::kernels::cuda {

/// Largest element count one elementwise launch covers (grid-stride loops beyond it).
constexpr std::int64_t grid_blocks_max = 65535;

inline unsigned blocks_for(std::int64_t n, int threads) {
  const std::int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > grid_blocks_max ? grid_blocks_max : b));
}

inline status invalid(const char* op, const std::string& why) {
  return {status_code::invalid_argument, std::string{op} + ": " + why};
}

}  // namespace bastion::kernels::cuda
