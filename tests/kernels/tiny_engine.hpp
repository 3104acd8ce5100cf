#pragma once
// A tiny random llama model (Q8_0 weights, seed 11) loaded through the GGUF path, with a CPU
// backend, a KV cache of 4-token blocks and a decoder: the engine tests' common fixture.
// REQUIRES: included from Catch2 tests (it REQUIREs each setup step).

#include "kernels/engine/decoder.hpp"
#include "kernels/model/gguf_loader.hpp"
#include "tests/kernels/tiny_model.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>
#include <memory>
#include <string>

namespace bastion::test {

struct tiny_engine {
  tiny_spec spec;
  kernels::model m;
  std::unique_ptr<kernels::backend> be = kernels::make_cpu_backend();
  std::unique_ptr<kernels::kv_cache> kv;
  std::unique_ptr<kernels::decoder> dec;

  explicit tiny_engine(std::int64_t blocks = 64) {
    const std::string path = "/tmp/bastion-tiny-engine-" + std::to_string(::getpid()) + ".gguf";
    const auto hf = random_hf_weights(spec, 11);
    REQUIRE(write_gguf(spec, hf, kernels::tensor_type::q8_0, path));
    REQUIRE(kernels::load_gguf_model(path, m));
    ::unlink(path.c_str());
    REQUIRE(kernels::kv_cache::create({m.config.n_layers, m.config.kv_dim(), 4, blocks, 16}, kv));
    dec = std::make_unique<kernels::decoder>(m, *be, *kv);
  }
};

}  // namespace bastion::test
