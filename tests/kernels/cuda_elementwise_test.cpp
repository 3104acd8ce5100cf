// The CUDA backend's row and elementwise operations against the CPU reference: embedding
// lookup in every stored type, RoPE in both pairings, residual and bias adds, SiLU-gated
// product, softmax; plus the table errors the device reports at synchronize.

#include "tests/kernels/cuda_test_support.hpp"

using namespace bastion;
using namespace bastion::test;
using kernels::tensor_type;

int main() {
  std::unique_ptr<kernels::backend> gpu;
  if (int rc = open_cuda(gpu); rc != 0) return rc;
  auto cpu = kernels::make_cpu_backend();
  cuda_checks c;
  std::mt19937 rng{9};

  for (auto type : all_weight_types) {  // embed_rows
    const std::int64_t rows = 50, cols = 96;
    const auto bytes = encode_weights(type, random_vector(rows * cols, rng));
    const std::vector<std::int32_t> ids = {0, 49, 7, 7, 23};
    std::vector<float> want(ids.size() * cols);
    if (!cpu->embed_rows({type, bytes.data(), rows, cols}, ids.data(), 5, want.data())) return 1;
    dev<std::uint8_t> dt{*gpu, bytes};
    dev<std::int32_t> di{*gpu, ids};
    dev<float> dout{*gpu, std::vector<float>(want.size())};
    auto s = gpu->embed_rows({type, dt.ptr(), rows, cols}, di.ptr(), 5, dout.ptr());
    const double err = s ? normalised_error(dout.read(*gpu, want.size()), want) : 1.0;
    c.check(s && err == 0.0, "embed_rows " + type_name(type) + " (exact)", err);
  }
  {  // an id outside the table: reported at the next synchronize, and the error clears
    dev<float> table{*gpu, random_vector(4 * 8, rng)}, out{*gpu, std::vector<float>(16)};
    dev<std::int32_t> ids{*gpu, std::vector<std::int32_t>{1, 4}};
    auto s = gpu->embed_rows({tensor_type::f32, table.ptr(), 4, 8}, ids.ptr(), 2, out.ptr());
    auto sync = gpu->synchronize();
    c.check(s && sync.code() == kernels::status_code::invalid_argument &&
                sync.message().find("token id") != std::string::npos,
            "embed_rows id 4 of a 4-row table is reported at synchronize: " + sync.message());
    c.check(static_cast<bool>(gpu->synchronize()), "the error is reported once");
  }
  for (auto style : {kernels::rope_style::adjacent_pairs, kernels::rope_style::half_split}) {
    const std::int64_t tokens = 5, heads = 3, hd = 64;
    const kernels::rope_params p{style, 48, 10000.0f};
    auto x = random_vector(tokens * heads * hd, rng);
    const std::vector<std::int32_t> pos = {0, 1, 17, 4095, 100000};
    auto want = x;
    if (!cpu->rope_f32(want.data(), pos.data(), tokens, heads, hd, p)) return 1;
    dev<float> dx{*gpu, x};
    dev<std::int32_t> dp{*gpu, pos};
    auto s = gpu->rope_f32(dx.ptr(), dp.ptr(), tokens, heads, hd, p);
    const double err = s ? normalised_error(dx.read(*gpu, x.size()), want) : 1.0;
    c.check(s && err < 1e-6,
            std::string{"rope_f32 "} +
                (style == kernels::rope_style::adjacent_pairs ? "adjacent" : "half-split") +
                " rot_dim 48 of 64, positions to 100000",
            err);
  }
  {
    dev<float> dx{*gpu, std::vector<float>(8)};
    dev<std::int32_t> dp{*gpu, std::vector<std::int32_t>{0}};
    auto s = gpu->rope_f32(dx.ptr(), dp.ptr(), 1, 1, 8, {kernels::rope_style::half_split, 7, 1e4f});
    c.check(s.code() == kernels::status_code::invalid_argument, "rope_f32 odd rot_dim refused");
  }
  {  // add, bias, silu_mul (aliasing out == gate), softmax
    const std::int64_t rows = 7, dim = 1000;
    auto y = random_vector(rows * dim, rng), x = random_vector(rows * dim, rng),
         bias = random_vector(dim, rng);
    auto want = y;
    if (!cpu->add_f32(want.data(), x.data(), rows * dim)) return 1;
    if (!cpu->add_bias_f32(want.data(), bias.data(), rows, dim)) return 1;
    dev<float> dy{*gpu, y}, dx{*gpu, x}, db{*gpu, bias};
    auto s = gpu->add_f32(dy.ptr(), dx.ptr(), rows * dim);
    if (s) s = gpu->add_bias_f32(dy.ptr(), db.ptr(), rows, dim);
    double err = s ? normalised_error(dy.read(*gpu, y.size()), want) : 1.0;
    c.check(s && err == 0.0, "add_f32 then add_bias_f32 7x1000 (exact)", err);

    auto gate = random_vector(rows * dim, rng, 3.0f), up = random_vector(rows * dim, rng);
    auto want_g = gate;
    if (!cpu->silu_mul_f32(want_g.data(), up.data(), want_g.data(), rows * dim)) return 1;
    dev<float> dg{*gpu, gate}, du{*gpu, up};
    s = gpu->silu_mul_f32(dg.ptr(), du.ptr(), dg.ptr(), rows * dim);
    err = s ? normalised_error(dg.read(*gpu, gate.size()), want_g) : 1.0;
    c.check(s && err < 1e-6, "silu_mul_f32 in place over gate", err);

    auto logits = random_vector(rows * dim, rng, 10.0f);
    auto want_s = logits;
    if (!cpu->softmax_f32(want_s.data(), rows, dim)) return 1;
    dev<float> dl{*gpu, logits};
    s = gpu->softmax_f32(dl.ptr(), rows, dim);
    err = s ? normalised_error(dl.read(*gpu, logits.size()), want_s) : 1.0;
    c.check(s && err < 1e-5, "softmax_f32 7x1000, logits of sd 10", err);
  }
  {  // rmsnorm, rows of a large width
    const std::int64_t rows = 3, dim = 4099;
    auto x = random_vector(rows * dim, rng, 30.0f), w = random_vector(dim, rng);
    std::vector<float> want(x.size());
    if (!cpu->rmsnorm_f32(x.data(), w.data(), want.data(), rows, dim, 1e-6f)) return 1;
    dev<float> dx{*gpu, x}, dw{*gpu, w};
    auto s = gpu->rmsnorm_f32(dx.ptr(), dw.ptr(), dx.ptr(), rows, dim, 1e-6f);
    const double err = s ? normalised_error(dx.read(*gpu, x.size()), want) : 1.0;
    c.check(s && err < 1e-5, "rmsnorm_f32 3x4099 in place", err);
  }
  return c.finish();
}
