// Greedy sampling on the device (backend::argmax_rows_f32) against the CPU sampler's greedy
// path (temperature 0): random rows of vocabulary size, planted ties (the lowest id wins),
// rows of -inf and NaN entries, and hostile shapes.

#include "kernels/engine/sampler.hpp"
#include "tests/kernels/cuda_test_support.hpp"

#include <limits>

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
