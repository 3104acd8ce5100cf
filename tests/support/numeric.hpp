#pragma once
// Numbers the kernel tests share: seeded random vectors and the normalised error every backend
// is checked with, max |got - want| / max(max |want|, tiny).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <vector>

namespace bastion::test {

inline std::vector<float> random_vector(std::size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> dist{0.0f, sd};
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

/// Over want's elements; `got` points at least as many.
template <class Got, class Want>
double normalised_error(const Got* got, const std::vector<Want>& want) {
  double num = 0.0, den = 1e-30;
  for (std::size_t i = 0; i < want.size(); ++i) {
    num = std::max(num, std::abs(static_cast<double>(got[i]) - static_cast<double>(want[i])));
    den = std::max(den, std::abs(static_cast<double>(want[i])));
  }
  return num / den;
}

/// Vectors of different lengths are an error: infinity, so the bound check fails.
template <class Got, class Want>
double normalised_error(const std::vector<Got>& got, const std::vector<Want>& want) {
  if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
  return normalised_error(got.data(), want);
}

}  // namespace bastion::test
