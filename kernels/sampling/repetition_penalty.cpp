#include "kernels/sampling/repetition_penalty.hpp"

#include <cmath>
#include <string>

namespace bastion::kernels {

status check_repetition_penalty(const float* x, std::int64_t rows, std::int64_t dim,
                                const float* penalty, const std::int32_t* token_begin,
                                const std::int32_t* tokens) {
  auto bad = [](const std::string& why) {
    return status{status_code::invalid_argument, "repetition_penalty_f32: " + why};
  };
  if (rows < 0 || dim <= 0) return bad("a shape that is not rows >= 0, dim > 0");
  if (rows == 0) return status::ok();
  if (!x || !penalty || !token_begin) return bad("null pointer");
  if (token_begin[0] != 0) return bad("token_begin[0] is " + std::to_string(token_begin[0]));
  for (std::int64_t r = 0; r < rows; ++r) {
    const float p = penalty[r];
    if (!std::isfinite(p) || p <= 0.0f)
      return bad("row " + std::to_string(r) + ": penalty " + std::to_string(p) +
                 " is not finite and > 0");
    const std::int32_t begin = token_begin[r], end = token_begin[r + 1];
    if (end < begin)
      return bad("token_begin falls from " + std::to_string(begin) + " to " + std::to_string(end) +
                 " at row " + std::to_string(r));
    if (end > begin && !tokens) return bad("null tokens");
    for (std::int32_t i = begin + 1; i < end; ++i)
      if (tokens[i] <= tokens[i - 1])
        return bad("row " + std::to_string(r) + ": tokens not ascending and distinct (" +
                   std::to_string(tokens[i - 1]) + " then " + std::to_string(tokens[i]) + ")");
  }
  return status::ok();
}

status host_repetition_penalty(float* x, std::int64_t rows, std::int64_t dim, const float* penalty,
                               const std::int32_t* token_begin, const std::int32_t* tokens) {
  if (auto st = check_repetition_penalty(x, rows, dim, penalty, token_begin, tokens); !st)
    return st;
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = x + r * dim;
    for (std::int32_t i = token_begin[r]; i < token_begin[r + 1]; ++i) {
      const std::int32_t t = tokens[i];
      if (t < 0 || t >= dim) continue;  // as the sampler passes over ids outside the vocabulary
      row[t] = penalised_logit(row[t], penalty[r]);
    }
  }
  return status::ok();
}

}  // namespace bastion::kernels
