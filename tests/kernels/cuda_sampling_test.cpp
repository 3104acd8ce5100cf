// Greedy sampling on the device (backend::argmax_rows_f32) against the CPU sampler's greedy
// path (temperature 0): random rows of vocabulary size, planted ties (the lowest id wins),
// rows of -inf and NaN entries, and hostile shapes. Sampling candidates on the device
// (backend::sampling_candidates_f32) against their host definition, and the tokens the
// sampler draws from them against the tokens it draws from whole rows. The repetition penalty
// on the device (backend::repetition_penalty_f32) against its host definition, bit for bit, and
// the greedy token of penalised logits against the sampler's, which applies it on the host.

#include "kernels/engine/sampler.hpp"
#include "kernels/sampling/candidates.hpp"
#include "kernels/sampling/repetition_penalty.hpp"
#include "tests/kernels/cuda_test_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
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

  {  // repetition penalty: the device's against the host definition, bit for bit
    const std::int64_t dim = 151936, n = 6;
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float tiny = std::numeric_limits<float>::denorm_min();
    auto rows = random_vector(static_cast<std::size_t>(n * dim), rng, 3.0f);
    const float specials[] = {0.0f, -0.0f, nan, inf, -inf, tiny, -tiny, 3e38f, -3e38f, 1e-30f};
    for (std::size_t i = 0; i < std::size(specials); ++i) rows[i * 1000] = specials[i];
    const float penalties[n] = {1.3f, 0.7f, 1.0f, 2.0f, 1.1f, 1.5f};
    std::vector<std::int32_t> begin{0}, tokens;
    auto add_row = [&](std::vector<std::int32_t> ids) {
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      tokens.insert(tokens.end(), ids.begin(), ids.end());
      begin.push_back(static_cast<std::int32_t>(tokens.size()));
    };
    auto random_ids = [&](int count) {
      std::uniform_int_distribution<std::int32_t> id{0, static_cast<std::int32_t>(dim - 1)};
      std::vector<std::int32_t> ids;
      for (int i = 0; i < count; ++i) ids.push_back(id(rng));
      return ids;
    };
    std::vector<std::int32_t> row0{-5, -1, static_cast<std::int32_t>(dim), 1 << 30};
    for (std::size_t i = 0; i < std::size(specials); ++i)
      row0.push_back(static_cast<std::int32_t>(i * 1000));
    add_row(row0);              // special values, ids outside the row
    add_row(random_ids(3000));  // a long history
    add_row({});                // no tokens
    std::vector<std::int32_t> every_third;
    for (std::int32_t i = 0; i < dim; i += 3) every_third.push_back(i);
    add_row(every_third);  // more tokens than threads many times over
    add_row({7});
    add_row(random_ids(20000));
    dev<float> dx{*gpu, rows};
    const auto st =
        gpu->repetition_penalty_f32(dx.ptr(), n, dim, penalties, begin.data(), tokens.data());
    c.check(static_cast<bool>(st), "repetition_penalty_f32 runs: " + st.message());
    auto got = dx.read(*gpu, rows.size());
    auto want = rows;
    const auto host_st = kernels::host_repetition_penalty(want.data(), n, dim, penalties,
                                                          begin.data(), tokens.data());
    std::size_t differing = 0, changed = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      const bool both_nan = std::isnan(got[i]) && std::isnan(want[i]);
      differing += both_nan || std::memcmp(&got[i], &want[i], sizeof(float)) == 0 ? 0 : 1;
      changed += !std::isnan(want[i]) && want[i] != rows[i] ? 1 : 0;
    }
    c.check(st && host_st && differing == 0 && changed > 50000,
            "penalised logits equal the host definition bit for bit (" + std::to_string(changed) +
                " changed; specials, ids outside, empty rows)");

    // A second call with other tables (the device scratch reused) on other rows: the greedy
    // token of each penalised row is the sampler's, which applies the penalty on the host.
    const auto plain = random_vector(static_cast<std::size_t>(n * dim), rng, 3.0f);
    dev<float> dx2{*gpu, plain};
    std::vector<std::int32_t> begin2{0}, tokens2, history_of[n];
    for (std::int64_t r = 0; r < n; ++r) {
      // The row's five best tokens, so the penalty moves the argmax.
      std::vector<std::int32_t> order(static_cast<std::size_t>(dim));
      for (std::int32_t i = 0; i < dim; ++i) order[static_cast<std::size_t>(i)] = i;
      const float* row = plain.data() + r * dim;
      std::partial_sort(order.begin(), order.begin() + 5, order.end(),
                        [&](std::int32_t a, std::int32_t b) { return row[a] > row[b]; });
      history_of[r].assign(order.begin(), order.begin() + 5);
      std::vector<std::int32_t> ids = history_of[r];
      std::sort(ids.begin(), ids.end());
      tokens2.insert(tokens2.end(), ids.begin(), ids.end());
      begin2.push_back(static_cast<std::int32_t>(tokens2.size()));
    }
    const float strong[n] = {3.0f, 3.0f, 1.0f, 2.5f, 4.0f, 10.0f};
    bool same = static_cast<bool>(
        gpu->repetition_penalty_f32(dx2.ptr(), n, dim, strong, begin2.data(), tokens2.data()));
    const auto greedy_got = device_argmax(*gpu, dx2.read(*gpu, plain.size()), n, dim);
    int moved = 0;
    same = same && greedy_got.size() == static_cast<std::size_t>(n);
    for (std::int64_t r = 0; same && r < n; ++r) {
      kernels::sampling_params p;
      p.repetition_penalty = strong[r];
      kernels::sampler penalised{p};
      const std::vector<float> row(plain.begin() + r * dim, plain.begin() + (r + 1) * dim);
      const auto want_token = penalised.sample(row.data(), dim, history_of[r]);
      same = greedy_got[static_cast<std::size_t>(r)] == want_token;
      moved += want_token != cpu_greedy(row) ? 1 : 0;
    }
    c.check(same && moved == 5,
            "argmax of device-penalised rows is the host sampler's penalised greedy token (" +
                std::to_string(moved) + " of 5 penalised rows moved by the penalty)");

    // Tables that break the contract are refused before anything runs.
    const std::int32_t unsorted[2] = {9, 3};
    const std::int32_t one_row[2] = {0, 2};
    const float zero = 0.0f;
    c.check(
        gpu->repetition_penalty_f32(dx.ptr(), 1, dim, penalties, one_row, unsorted).code() ==
                kernels::status_code::invalid_argument &&
            gpu->repetition_penalty_f32(dx.ptr(), 1, dim, &zero, one_row, tokens.data()).code() ==
                kernels::status_code::invalid_argument &&
            gpu->repetition_penalty_f32(nullptr, 1, dim, penalties, one_row, tokens.data())
                    .code() == kernels::status_code::invalid_argument &&
            static_cast<bool>(gpu->synchronize()),
        "unsorted tokens, a penalty of 0 and a null row are invalid_argument");
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
