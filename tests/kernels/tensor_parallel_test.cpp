// Tensor parallelism's arithmetic on the CPU backend with simulated ranks (threads sharing a
// local_collective_group in place of NCCL; one GPU cannot run two NCCL ranks): R = 2 and 4
// ranks must give the logits of R = 1 (the unsharded decoder) for a prefill chunk and the
// decode steps after it, for llama (GQA) and qwen2 (QKV biases), F32 and Q8_0 weights.

#include "kernels/engine/tensor_parallel.hpp"
#include "kernels/engine/decoder.hpp"
#include "kernels/model/gguf_loader.hpp"
#include "tests/kernels/tiny_model.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>
#include <thread>

using namespace bastion;
using namespace bastion::kernels;

namespace {

// Logits of every prompt token, then of each of four fixed decode tokens, unsharded.
std::vector<float> run(const model& m, collective* coll) {
  auto be = make_cpu_backend();
  std::unique_ptr<kv_cache> kv;
  REQUIRE(kv_cache::create({m.config.n_layers, m.config.kv_dim(), 4, 32, 2}, *be, kv));
  decoder dec{m, *be, *kv};
  dec.use_collective(coll);
  REQUIRE(kv->add_sequence(1));
  std::vector<float> all;
  step_output out;
  REQUIRE(dec.step({{1, {3, 14, 15, 9, 2, 6, 5, 35, 8}, true}}, out));
  all.insert(all.end(), out.logits.begin(), out.logits.end());
  for (std::int32_t t : {7, 93, 23, 8}) {
    REQUIRE(dec.step({{1, {t}, false}}, out));
    all.insert(all.end(), out.logits.begin(), out.logits.end());
  }
  return all;
}

std::vector<float> run_ranks(const model& m, int ranks) {
  std::vector<model> shards(static_cast<std::size_t>(ranks));
  for (int r = 0; r < ranks; ++r)
    REQUIRE(shard_model(m, r, ranks, shards[static_cast<std::size_t>(r)]));
  local_collective_group group{ranks};
  std::vector<std::vector<float>> logits(static_cast<std::size_t>(ranks));
  for (int r = 0; r < ranks; ++r) group.rank(r);  // make the handles before the threads start
  std::vector<std::thread> threads;
  std::vector<std::string> errors(static_cast<std::size_t>(ranks));
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      // Catch2's REQUIRE is not thread-safe: the ranks run the decoder directly.
      auto be = make_cpu_backend();
      const auto& sm = shards[static_cast<std::size_t>(r)];
      std::unique_ptr<kv_cache> kv;
      auto s = kv_cache::create({sm.config.n_layers, sm.config.kv_dim(), 4, 32, 2}, *be, kv);
      decoder dec{sm, *be, *kv};
      dec.use_collective(&group.rank(r));
      if (s) s = kv->add_sequence(1);
      step_output out;
      auto& all = logits[static_cast<std::size_t>(r)];
      if (s) s = dec.step({{1, {3, 14, 15, 9, 2, 6, 5, 35, 8}, true}}, out);
      if (s) all.insert(all.end(), out.logits.begin(), out.logits.end());
      for (std::int32_t t : {7, 93, 23, 8}) {
        if (s) s = dec.step({{1, {t}, false}}, out);
        if (s) all.insert(all.end(), out.logits.begin(), out.logits.end());
      }
      if (!s) errors[static_cast<std::size_t>(r)] = s.message();
    });
  for (auto& t : threads) t.join();
  for (const auto& e : errors) REQUIRE(e.empty());
  for (int r = 1; r < ranks; ++r) REQUIRE(logits[static_cast<std::size_t>(r)] == logits[0]);
  return logits[0];
}

double normalised(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  double num = 0.0, den = 1e-30;
  for (std::size_t i = 0; i < want.size(); ++i) {
    num = std::max(num, std::abs(double{got[i]} - double{want[i]}));
    den = std::max(den, std::abs(double{want[i]}));
  }
  return num / den;
}

model load(const test::tiny_spec& spec, tensor_type type) {
  const std::string path = "/tmp/bastion-tp-" + std::to_string(::getpid()) + ".gguf";
  REQUIRE(test::write_gguf(spec, test::random_hf_weights(spec, 5), type, path));
  model m;
  REQUIRE(load_gguf_model(path, m));
  ::unlink(path.c_str());
  return m;
}

}  // namespace

TEST_CASE("tensor-parallel ranks reproduce the unsharded logits", "[tensor_parallel]") {
  test::tiny_spec spec;
  spec.dim = 128;
  spec.n_heads = 8;
  spec.n_kv_heads = 4;
  spec.head_dim = 16;
  spec.ffn = 256;
  for (const char* arch : {"llama", "qwen2"})
    for (auto type : {tensor_type::f32, tensor_type::q8_0}) {
      spec.arch = arch;
      const model m = load(spec, type);
      const auto want = run(m, nullptr);
      for (int ranks : {1, 2, 4}) {
        INFO(arch << " " << ggml_type_name(static_cast<std::uint32_t>(type)) << " ranks " << ranks);
        const auto got = run_ranks(m, ranks);
        // Sums of partial products in another order: float rounding only.
        CHECK(normalised(got, want) < 1e-5);
        if (ranks == 1) CHECK(got == want);
      }
    }
}

TEST_CASE("models that do not split are refused with the reason", "[tensor_parallel]") {
  test::tiny_spec spec;  // 2 KV heads, ffn 96
  const model m = load(spec, tensor_type::q8_0);
  model out;
  auto s = shard_model(m, 0, 4, out);
  CHECK(s.code() == status_code::invalid_argument);
  CHECK(s.message().find("KV heads") != std::string::npos);
  // 96 / 2 = 48 columns of W_down per rank: not whole Q8_0 blocks of 32.
  s = shard_model(m, 1, 2, out);
  CHECK(s.code() == status_code::invalid_argument);
  CHECK(s.message().find("blocks") != std::string::npos);
  CHECK(shard_model(m, 2, 2, out).code() == status_code::invalid_argument);
  // F32 has no blocks: the same model splits in two.
  const model f = load(spec, tensor_type::f32);
  CHECK(shard_model(f, 1, 2, out));
  CHECK(out.config.n_kv_heads == 1);
  CHECK(out.config.ffn_dim == 48);
}
