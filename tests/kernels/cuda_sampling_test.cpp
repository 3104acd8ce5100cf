// Greedy sampling on the device (backend::argmax_rows_f32) against the CPU sampler's greedy
// path (temperature 0): random rows of vocabulary size, planted ties (the lowest id wins),
// rows of -inf and NaN entries, and hostile shapes. Sampling candidates on the device
// (backend::sampling_candidates_f32) against their host definition, and the tokens the
// sampler draws from them against the tokens it draws from whole rows.

#include "kernels/engine/sampler.hpp"
#include "kernels/sampling/candidates.hpp"
#include "tests/kernels/cuda_test_support.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

using namespace bastion;
using namespace bastion::test;

namespace {

std::int32_t cpu_greedy(const std::vector<float>& row) {
  kernels::sampler greedy{kernels::sampling_params{}};
  return greedy.sample(row.data(), static_cast<std::int64_t>(row.size()), {});
}

// The device's choice for each row of `rows` [n x dim]; -1 entries mean the call failed.
std::vector<std::int32_t> device_argmax(kernels::backend& gpu, const std::vector<float>& rows,
                                        std::int64_t n, std::int64_t dim) {
  dev<float> dx{gpu, rows};
  dev<std::int32_t> dout{gpu, std::vector<std::int32_t>(static_cast<std::size_t>(n), -1)};
  if (!gpu.argmax_rows_f32(dx.ptr(), n, dim, dout.ptr())) return {};
  return dout.read(gpu, static_cast<std::size_t>(n));
}

}  // namespace

int main() {
  std::unique_ptr<kernels::backend> gpu;
  if (int rc = open_cuda(gpu); rc != 0) return rc;
  auto cpu = kernels::make_cpu_backend();
  cuda_checks c;
  std::mt19937 rng{19};

  for (std::int64_t dim : {1, 7, 512, 513, 49152, 151936}) {
    const std::int64_t n = 5;
    const auto rows = random_vector(static_cast<std::size_t>(n * dim), rng, 3.0f);
    const auto got = device_argmax(*gpu, rows, n, dim);
    bool same = got.size() == static_cast<std::size_t>(n);
    std::vector<std::int32_t> host_out(static_cast<std::size_t>(n));
    same = same && cpu->argmax_rows_f32(rows.data(), n, dim, host_out.data());
    for (std::int64_t r = 0; same && r < n; ++r) {
      const std::vector<float> row(rows.begin() + r * dim, rows.begin() + (r + 1) * dim);
      same = got[static_cast<std::size_t>(r)] == cpu_greedy(row) &&
             host_out[static_cast<std::size_t>(r)] == cpu_greedy(row);
    }
    c.check(same, "argmax of 5 random rows of " + std::to_string(dim) +
                      " equals the CPU sampler's greedy token (device and host default)");
  }

  {  // ties: the maximum planted at several ids; the lowest one wins, wherever the threads are
    const std::int64_t dim = 40000;
    std::vector<float> rows;
    std::vector<std::int32_t> want;
    for (std::int64_t first : {0, 1, 511, 512, 20001, 39999}) {
      auto row = random_vector(static_cast<std::size_t>(dim), rng);
      for (std::int64_t at = first; at < dim; at += 7919) row[static_cast<std::size_t>(at)] = 50.0f;
      want.push_back(cpu_greedy(row));
      rows.insert(rows.end(), row.begin(), row.end());
    }
    const auto got = device_argmax(*gpu, rows, static_cast<std::int64_t>(want.size()), dim);
    c.check(got == want && want[0] == 0 && want[3] == 512,
            "equal maxima at several ids: the lowest id, as the CPU sampler picks");
  }

  {  // -inf rows, and NaN entries passed over
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> rows{-inf, -inf, -inf, -inf,  //
                                  1.0f, nan,  3.0f, 2.0f,  //
                                  nan,  nan,  nan,  nan};
    const auto got = device_argmax(*gpu, rows, 3, 4);
    c.check(got == std::vector<std::int32_t>{0, 2, 0},
            "a row of -inf gives id 0, NaN entries are passed over, a row of NaN gives 0");
  }

  {  // sampling candidates: the device's against the host definition, then the draws
    const std::int64_t dim = 49152, n = 5;
    const std::int32_t capacity = 512;
    auto rows = random_vector(static_cast<std::size_t>(n * dim), rng, 3.0f);
    rows[static_cast<std::size_t>(dim + 5)] = std::numeric_limits<float>::quiet_NaN();
    // Rows 0, 1 and 3 fit the capacity (22, 173 and 10 candidates on the host); row 2 is not
    // sampled; row 4 overflows it (which of its candidates the device keeps is unspecified).
    const float temperature[n] = {0.25f, 0.3f, 0.0f, 0.2f, 1.5f};
    std::vector<kernels::candidate_summary> on_gpu(n), on_host(n);
    std::vector<std::int32_t> gpu_ids(n * capacity), host_ids(n * capacity);
    std::vector<float> gpu_logits(n * capacity), host_logits(n * capacity);
    dev<float> dx{*gpu, rows};
    const auto st = gpu->sampling_candidates_f32(dx.ptr(), n, dim, temperature,
                                                 kernels::sampler::candidate_window, capacity,
                                                 on_gpu.data(), gpu_ids.data(), gpu_logits.data());
    c.check(static_cast<bool>(st), "sampling_candidates_f32 runs: " + st.message());
    const auto host_st = kernels::host_sampling_candidates(
        rows.data(), n, dim, temperature, kernels::sampler::candidate_window, capacity,
        on_host.data(), host_ids.data(), host_logits.data());
    bool same = st && host_st;
    double worst_total = 0.0;
    for (std::int64_t r = 0; same && r < n; ++r) {
      const auto& g = on_gpu[static_cast<std::size_t>(r)];
      const auto& h = on_host[static_cast<std::size_t>(r)];
      same = g.count == h.count && g.best == h.best;
      if (h.total > 0.0) worst_total = std::max(worst_total, std::abs(g.total - h.total) / h.total);
      if (h.count > capacity) continue;  // an overflowing row's kept ids are unspecified
      // The same set of ids (the device's order is its threads'), each with its raw logit.
      const auto at = static_cast<std::size_t>(r * capacity);
      const auto k = static_cast<std::size_t>(h.count);
      std::vector<std::pair<std::int32_t, float>> a, b;
      for (std::size_t i = 0; i < k; ++i) {
        a.emplace_back(gpu_ids[at + i], gpu_logits[at + i]);
        b.emplace_back(host_ids[at + i], host_logits[at + i]);
      }
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      same = same && a == b;
    }
    const bool rows_as_planned = on_host[0].count <= capacity && on_host[1].count <= capacity &&
                                 on_host[3].count <= capacity && on_host[4].count > capacity;
    c.check(same && worst_total < 1e-12 && on_gpu[2].count == 0 && rows_as_planned,
            "candidates: best, count and the (id, logit) set equal the host's; totals within "
            "1e-12; the unsampled row is empty; rows 0, 1, 3 fit the capacity and row 4 not",
            worst_total);

    // Draws: from the device's candidates (whole row when asked) against whole rows.
    int agree = 0, total_draws = 0, answered = 0;
    for (std::int64_t r : {0, 1, 3}) {
      kernels::sampling_params p;
      p.temperature = temperature[r];
      p.top_p = r == 3 ? 0.9f : 1.0f;
      p.top_k = r == 1 ? 40 : 0;
      p.seed = 99 + static_cast<std::uint64_t>(r);
      kernels::sampler from{p}, whole{p};
      const float* row = rows.data() + r * dim;
      const auto at = static_cast<std::size_t>(r * capacity);
      for (int i = 0; i < 50; ++i, ++total_draws) {
        auto token = from.sample_from(on_gpu[static_cast<std::size_t>(r)], gpu_ids.data() + at,
                                      gpu_logits.data() + at, capacity);
        if (token) ++answered;
        const auto picked = token ? *token : from.sample(row, dim, {});
        agree += picked == whole.sample(row, dim, {}) ? 1 : 0;
      }
    }
    kernels::sampling_params flat;
    flat.temperature = temperature[4];
    kernels::sampler overflowing{flat};
    const auto at4 = static_cast<std::size_t>(4 * capacity);
    const bool asks_for_row = !overflowing.sample_from(on_gpu[4], gpu_ids.data() + at4,
                                                       gpu_logits.data() + at4, capacity);
    c.check(agree == total_draws && answered > 0 && asks_for_row,
            "150 draws from the device's candidates pick what whole rows pick (" +
                std::to_string(answered) +
                " answered by the candidates alone); a row over the capacity asks for the row");
  }

  {  // hostile shapes are refused before any launch
    dev<float> dx{*gpu, std::vector<float>(8)};
    dev<std::int32_t> dout{*gpu, std::vector<std::int32_t>(2)};
    c.check(gpu->argmax_rows_f32(dx.ptr(), 2, 0, dout.ptr()).code() ==
                    kernels::status_code::invalid_argument &&
                gpu->argmax_rows_f32(nullptr, 2, 4, dout.ptr()).code() ==
                    kernels::status_code::invalid_argument &&
                gpu->argmax_rows_f32(dx.ptr(), -1, 4, dout.ptr()).code() ==
                    kernels::status_code::invalid_argument,
            "dim 0, a null input and negative rows are invalid_argument");
    c.check(static_cast<bool>(gpu->synchronize()), "the device is still usable afterwards");
  }
  return c.finish();
}
