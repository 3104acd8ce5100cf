// The whole decoder on CUDA against the CPU engine: greedy tokens of two sequences batched
// together (one prefill step, then decode steps) must be identical, or first diverge at a
// measured near-tie. Models: tiny random llama/qwen2 models written by our GGUF writer in
// F32, F16, BF16 and Q8_0, and the cut of SmolLM2 (Q4_1 layers, Q8_0 embeddings) that
// bench/gpu-check carries, when present (argv[1], default .cache/cut/smollm2-cut.gguf).
// Each model also runs with the decode steps unrecorded (bit-identical logits expected) and
// with greedy tokens taken on the device (identical tokens expected).

#include "kernels/model/gguf_loader.hpp"
#include "tests/kernels/cuda_greedy.hpp"
#include "tests/kernels/cuda_test_support.hpp"
#include "tests/kernels/tiny_model.hpp"

#include <unistd.h>

using namespace bastion;
using namespace bastion::test;

namespace {

void compare(kernels::backend& gpu, kernels::backend& cpu, const kernels::model& m,
             const std::vector<std::vector<std::int32_t>>& prompts, int steps,
             const std::string& what, cuda_checks& c) {
  greedy_run ref, got, unrecorded, on_device;
  auto s = run_greedy(m, cpu, prompts, steps, ref);
  if (s) s = run_greedy(m, gpu, prompts, steps, got);
  if (s) s = run_greedy(m, gpu, prompts, steps, unrecorded, {false, false});
  if (s) s = run_greedy(m, gpu, prompts, steps, on_device, {true, true});
  if (!s) {
    c.check(false, what + ": " + s.message());
    return;
  }
  c.check(compare_greedy(what, ref, got), what + " greedy tokens");
  // The recorded replay (a CUDA graph per decode shape) runs the same kernels in the same
  // order as operation by operation, so every logit must match bit for bit.
  c.check(unrecorded.logits == got.logits && unrecorded.tokens == got.tokens,
          what + ": recorded decode steps give bit-identical logits to unrecorded ones");
  c.check(on_device.tokens == got.tokens,
          what +
              ": greedy tokens taken on the device (no logits downloaded) equal the host's "
              "argmax of the device's logits");
}

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<kernels::backend> gpu;
  if (int rc = open_cuda(gpu); rc != 0) return rc;
  auto cpu = kernels::make_cpu_backend();
  cuda_checks c;

  struct tiny_case {
    const char* arch;
    kernels::tensor_type type;
  };
  for (auto tc : {tiny_case{"llama", kernels::tensor_type::q8_0},
                  tiny_case{"qwen2", kernels::tensor_type::f16},
                  tiny_case{"llama", kernels::tensor_type::bf16},
                  tiny_case{"qwen2", kernels::tensor_type::f32}}) {
    tiny_spec spec;
    spec.arch = tc.arch;
    const std::string path = "/tmp/bastion-cuda-engine-" + std::to_string(::getpid()) + ".gguf";
    kernels::model m;
    if (!write_gguf(spec, random_hf_weights(spec, 11), tc.type, path) ||
        !kernels::load_gguf_model(path, m)) {
      c.check(false, "tiny model written and loaded");
      continue;
    }
    ::unlink(path.c_str());
    compare(*gpu, *cpu, m, {{5, 17, 2, 44, 9, 30, 61, 8, 8, 12, 70, 3}, {90, 1, 2, 3, 4}}, 24,
            std::string{"tiny "} + tc.arch + " " + type_name(tc.type), c);
  }

  const std::string cut = argc > 1 ? argv[1] : ".cache/cut/smollm2-cut.gguf";
  kernels::model m;
  if (::access(cut.c_str(), R_OK) != 0) {
    std::printf(
        "NOTE: %s absent: the SmolLM2 cut was not compared (bench/gpu-check makes "
        "or carries it)\n",
        cut.c_str());
  } else if (auto s = kernels::load_gguf_model(cut, m); !s) {
    c.check(false, "load " + cut + ": " + s.message());
  } else {
    std::mt19937 rng{3};
    std::uniform_int_distribution<std::int32_t> id{0,
                                                   static_cast<std::int32_t>(m.config.vocab - 1)};
    std::vector<std::int32_t> a(40), b(9);
    for (auto& t : a) t = id(rng);
    for (auto& t : b) t = id(rng);
    compare(*gpu, *cpu, m, {a, b}, 32,
            "SmolLM2 cut (" + std::to_string(m.config.n_layers) + " layers)", c);
  }
  return c.finish();
}
