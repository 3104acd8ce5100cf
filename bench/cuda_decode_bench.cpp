// cuda_decode_bench: the whole decoder on a real model, CUDA against the CPU reference in the
// same run: prefill tokens/s (one sequence, one step), decode tokens/s (batch 1 and batch 8,
// one token per sequence per step), and decode's fraction of the memory-bandwidth limit: the
// weight bytes one step reads (every projection, the output projection included) over the step
// time, against a device-to-device cudaMemcpy measured here.
//
//   build/bench/cuda_decode_bench MODEL.gguf [prefill_tokens=128] [decode_steps=64]

#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/engine/decoder.hpp"
#include "kernels/model/gguf_loader.hpp"

#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <utility>
#include <vector>

using namespace bastion::kernels;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void must(const status& s, const char* what) {
  if (!s) {
    std::fprintf(stderr, "%s: %s\n", what, s.message().c_str());
    std::exit(1);
  }
}

struct figures {
  double prefill_tps = 0, decode1_tps = 0, decode1_step_s = 0, decode8_tps = 0;
  std::uint64_t bytes_per_step = 0;
};

figures measure(const model& m, backend& be, int prefill_tokens, int decode_steps,
                bool recordings = true, step_results want = step_results::logits) {
  std::unique_ptr<kv_cache> kv;
  const kv_cache_config cfg{m.config.n_layers, m.config.kv_dim(), 16, 1024, 16};
  must(kv_cache::create(cfg, be, kv), "kv cache");
  decoder dec{m, be, *kv};
  dec.use_recordings(recordings);
  must(dec.prepare(), "upload weights");
  figures f;
  if (const auto* r = dec.resident()) f.bytes_per_step = r->matrix_bytes_per_token;
  std::mt19937 rng{1};
  std::uniform_int_distribution<std::int32_t> id{0, static_cast<std::int32_t>(m.config.vocab - 1)};
  auto prompt = [&](int n) {
    std::vector<std::int32_t> p(static_cast<std::size_t>(n));
    for (auto& t : p) t = id(rng);
    return p;
  };
  step_output out;
  // Prefill: the best of 3 fresh sequences (the first also warms up).
  double best = 1e30;
  for (int r = 0; r < 3; ++r) {
    must(kv->add_sequence(100 + r), "add");
    const double t0 = now_s();
    must(dec.step({{static_cast<sequence_id>(100 + r), prompt(prefill_tokens), false}}, out),
         "prefill");
    best = std::min(best, now_s() - t0);
    kv->release(100 + r);
  }
  f.prefill_tps = prefill_tokens / best;
  // Decode, batch 1 and batch 8, after a 16-token prompt each.
  for (int batch : {1, 8}) {
    std::vector<step_entry> entries;
    for (int i = 0; i < batch; ++i) {
      must(kv->add_sequence(static_cast<sequence_id>(i)), "add");
      entries.push_back({static_cast<sequence_id>(i), prompt(16), false});
    }
    must(dec.step(entries, out), "prompt");
    for (auto& e : entries) e.tokens = {1};
    for (int w = 0; w < 3; ++w) must(dec.step(entries, out, want), "warm-up decode");
    const double t0 = now_s();
    for (int s = 0; s < decode_steps; ++s) must(dec.step(entries, out, want), "decode");
    const double step_s = (now_s() - t0) / decode_steps;
    if (batch == 1) {
      f.decode1_tps = 1.0 / step_s;
      f.decode1_step_s = step_s;
    } else {
      f.decode8_tps = batch / step_s;
    }
    for (int i = 0; i < batch; ++i) kv->release(static_cast<sequence_id>(i));
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.gguf [prefill_tokens] [decode_steps]\n", argv[0]);
    return 2;
  }
  const int prefill_tokens = argc > 2 ? std::atoi(argv[2]) : 128;
  const int decode_steps = argc > 3 ? std::atoi(argv[3]) : 64;
  std::printf("command: %s %s %d %d\n", argv[0], argv[1], prefill_tokens, decode_steps);
  model m;
  must(load_gguf_model(argv[1], m), "load");
  std::printf("model: %s, %lld layers, dim %lld, vocab %lld\n", argv[1],
              static_cast<long long>(m.config.n_layers), static_cast<long long>(m.config.dim),
              static_cast<long long>(m.config.vocab));
  std::unique_ptr<backend> gpu;
  if (auto s = cuda::make_cuda_backend(0, gpu); !s) {
    std::printf("SKIP: no CUDA backend: %s\n", s.message().c_str());
    return 77;
  }
  auto cpu = make_cpu_backend();
  const figures c = measure(m, *cpu, prefill_tokens, decode_steps);
  // CUDA three ways: every operation launched by itself with the logits downloaded (the
  // previous state), decode steps replayed as CUDA graphs, and graphs with the greedy token
  // taken on the device (one int per sequence downloaded instead of vocab floats).
  const figures g0 = measure(m, *gpu, prefill_tokens, decode_steps, false, step_results::logits);
  const figures g1 = measure(m, *gpu, prefill_tokens, decode_steps, true, step_results::logits);
  const figures g =
      measure(m, *gpu, prefill_tokens, decode_steps, true, step_results::greedy_tokens);

  // Memory-bandwidth ceiling: a 1 GiB device-to-device copy (read + write bytes).
  const std::size_t n = std::size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  must(cudaMalloc(&a, n) == cudaSuccess && cudaMalloc(&b, n) == cudaSuccess
           ? status::ok()
           : status{status_code::out_of_memory, "cudaMalloc"},
       "memcpy buffers");
  (void)cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice);
  (void)cudaDeviceSynchronize();
  const double t0 = now_s();
  for (int i = 0; i < 5; ++i) (void)cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice);
  (void)cudaDeviceSynchronize();
  const double copy_gbs = 2.0 * 5 * static_cast<double>(n) / (now_s() - t0) / 1e9;
  cudaFree(a);
  cudaFree(b);

  std::printf("prefill %d tokens : cuda %9.0f tok/s   cpu %8.1f tok/s   (x%.0f)\n", prefill_tokens,
              g.prefill_tps, c.prefill_tps, g.prefill_tps / c.prefill_tps);
  std::printf("cpu decode       : batch 1 %8.1f tok/s   batch 8 %8.1f tok/s\n", c.decode1_tps,
              c.decode8_tps);
  for (const auto& [f, how] : {std::pair{&g0, "op by op, logits downloaded  "},
                               std::pair{&g1, "graphs, logits downloaded    "},
                               std::pair{&g, "graphs, greedy on the device "}}) {
    const double gbs = static_cast<double>(f->bytes_per_step) / f->decode1_step_s / 1e9;
    std::printf(
        "cuda decode %s: batch 1 %8.1f tok/s (%6.1f us/step, %.1f GB/s = %.3f of memcpy)   "
        "batch 8 %8.1f tok/s\n",
        how, f->decode1_tps, f->decode1_step_s * 1e6, gbs, gbs / copy_gbs, f->decode8_tps);
  }
  std::printf(
      "decode bandwidth : %.1f MB of weights per step; memcpy %.0f GB/s (read + write) is the "
      "limit: %.1f us/step\n",
      static_cast<double>(g.bytes_per_step) / 1e6, copy_gbs,
      static_cast<double>(g.bytes_per_step) / copy_gbs / 1e3);
  return 0;
}
