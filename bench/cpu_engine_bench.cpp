// cpu_engine_bench: the engine's speed on a GGUF model with one CPU backend configuration,
// printed as one JSON object on stdout (bench/cpu_engine_bench.py runs it beside llama.cpp and
// prints ratios). Synthetic token ids, the same ones the Python side feeds llama.cpp.
//
//   cpu_engine_bench --model PATH [--kernels auto|scalar|avx2] [--numerics exact|int8]
//                    [--threads N] [--prompt-tokens 256] [--decode-steps 32] [--batch 16]
//                    [--requantize-q8] [--no-repack]
//   cpu_engine_bench --bandwidth [--threads N]     # memory read bandwidth probe only
//
// Measures: prefill of one prompt in one step (tokens/s), decode of one sequence after it
// (tokens/s), aggregate decode of `batch` sequences stepping together (tokens/s over all of
// them), and the weight bytes one decode step reads (every matrix once). Each speed is also
// given per second of process CPU time (*_cpu_tok_s): with --threads 1 on a shared machine,
// the figure other processes disturb least (wall time counts the slices they take; with more
// threads, CPU time counts the pool's spinning too). Load-time work (decoder::prepare: the
// weights made resident, repacked for the int8 numerics) is timed apart as prepare_s.
// The backend starts from the environment's settings (BASTION_CPU_KERNELS, _THREADS,
// _NUMERICS, as a worker's would); the flags override them.

#include "kernels/cpu/cpu_backend.hpp"
#include "kernels/engine/decoder.hpp"
#include "kernels/engine/resident_weights.hpp"
#include "kernels/model/gguf_loader.hpp"
#include "kernels/model/requantize.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

using namespace bastion::kernels;

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "cpu_engine_bench: %s\n", why.c_str());
  std::exit(2);
}

// The ids bench/cpu_engine_bench.py feeds llama.cpp: spread over the vocabulary, no specials.
std::int32_t synthetic_token(std::int64_t i, std::int64_t vocab) {
  return static_cast<std::int32_t>(100 + (i * 7919) % (vocab - 200));
}

// Best of five passes reading a buffer far larger than the caches, split over `threads`.
double bandwidth_gb_s(int threads) {
  const std::size_t bytes = std::size_t{512} << 20;
  std::vector<std::uint64_t> buf(bytes / sizeof(std::uint64_t));
  std::iota(buf.begin(), buf.end(), std::uint64_t{1});  // touch every page
  double best = 0.0;
  std::vector<std::uint64_t> sums(static_cast<std::size_t>(threads));
  for (int pass = 0; pass < 5; ++pass) {
    const auto t0 = clock_type::now();
    std::vector<std::thread> pool;
    const std::size_t per = buf.size() / static_cast<std::size_t>(threads);
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        const std::uint64_t* p = buf.data() + per * static_cast<std::size_t>(t);
        std::uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (std::size_t i = 0; i + 4 <= per; i += 4) {
          s0 += p[i];
          s1 += p[i + 1];
          s2 += p[i + 2];
          s3 += p[i + 3];
        }
        sums[static_cast<std::size_t>(t)] = s0 + s1 + s2 + s3;
      });
    for (auto& th : pool) th.join();
    best = std::max(best, static_cast<double>(bytes) / seconds_since(t0) / 1e9);
  }
  if (std::accumulate(sums.begin(), sums.end(), std::uint64_t{0}) == 0) die("impossible sum");
  return best;
}

std::uint64_t matrix_bytes(const weight_view& w) {
  return *row_bytes(w.type, static_cast<std::uint64_t>(w.cols)) *
         static_cast<std::uint64_t>(w.rows);
}

struct args {
  std::string model;
  cpu_backend_options options;
  std::int64_t prompt_tokens = 256;
  std::int64_t decode_steps = 32;
  std::int64_t batch = 16;
  bool bandwidth_only = false;
  bool requantize = false;
};

args parse(int argc, char** argv) {
  args a;
  if (auto s = cpu_backend_options::from_environment(a.options); !s) die(s.message());
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die(k + " needs a value");
      return argv[++i];
    };
    auto number = [&]() -> std::int64_t {
      const std::string v = value();
      char* end = nullptr;
      const long long n = std::strtoll(v.c_str(), &end, 10);
      if (*end != '\0' || n < 0 || n > 100000) die(k + " " + v + " is not a count in [0, 100000]");
      return n;
    };
    if (k == "--model") {
      a.model = value();
    } else if (k == "--kernels") {
      const std::string v = value();
      if (v == "auto")
        a.options.kernels = cpu_kernel_set::automatic;
      else if (v == "scalar")
        a.options.kernels = cpu_kernel_set::scalar;
      else if (v == "avx2")
        a.options.kernels = cpu_kernel_set::avx2;
      else
        die("--kernels " + v + ": auto, scalar or avx2");
    } else if (k == "--numerics") {
      const std::string v = value();
      if (v == "exact")
        a.options.numerics = cpu_matmul_numerics::exact_f32;
      else if (v == "int8")
        a.options.numerics = cpu_matmul_numerics::int8_activations;
      else
        die("--numerics " + v + ": exact or int8");
    } else if (k == "--threads") {
      a.options.threads = static_cast<int>(number());
    } else if (k == "--prompt-tokens") {
      a.prompt_tokens = std::max<std::int64_t>(1, number());
    } else if (k == "--decode-steps") {
      a.decode_steps = std::max<std::int64_t>(1, number());
    } else if (k == "--batch") {
      a.batch = std::max<std::int64_t>(1, number());
    } else if (k == "--bandwidth") {
      a.bandwidth_only = true;
    } else if (k == "--no-repack") {
      a.options.repack_weights = false;
    } else if (k == "--requantize-q8") {
      a.requantize = true;
    } else {
      die("unknown argument " + k);
    }
  }
  if (!a.bandwidth_only && a.model.empty()) die("--model PATH is required");
  return a;
}

void check(const status& s, const char* what) {
  if (!s) die(std::string{what} + ": " + s.message());
}

}  // namespace

int main(int argc, char** argv) {
  const args a = parse(argc, argv);
  const int threads = a.options.threads > 0
                          ? a.options.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (a.bandwidth_only) {
    std::printf("{\"threads\": %d, \"bandwidth_gb_s\": %.3f}\n", threads, bandwidth_gb_s(threads));
    return 0;
  }
  model m;
  check(load_gguf_model(a.model, m), "load");
  if (a.requantize) check(requantize_to_q8_0(m), "requantize");
  std::unique_ptr<backend> be;
  check(make_cpu_backend(a.options, be), "backend");
  const auto& c = m.config;

  std::uint64_t weight_bytes = matrix_bytes(m.weights.output);
  for (const auto& L : m.weights.layers)
    for (const auto* w : layer_projections(L)) weight_bytes += matrix_bytes(*w);

  const std::int64_t per_seq = a.prompt_tokens + a.decode_steps + 16;
  std::unique_ptr<kv_cache> kv;
  const std::int64_t block_tokens = 16;
  const std::int64_t blocks = (a.batch + 1) * ((per_seq + block_tokens - 1) / block_tokens + 1);
  check(kv_cache::create({c.n_layers, c.kv_dim(), block_tokens, blocks, a.batch + 1}, kv), "kv");
  decoder dec{m, *be, *kv, std::max<std::int64_t>(4096, a.prompt_tokens)};
  // Load-time work (the backend's repacked weight copies) before any timing.
  const auto prepare_t0 = clock_type::now();
  check(dec.prepare(), "prepare");
  const double prepare_s = seconds_since(prepare_t0);
  const resident_weights* resident = dec.resident();
  if (!resident) die("prepare left no resident weights");
  int repacked = 0;  // matrices the backend reads from its own copies
  for (const auto& L : resident->layers)
    for (const auto* w : layer_projections(L)) repacked += w->layout != weight_layout::stored;
  repacked += resident->output.layout != weight_layout::stored;
  step_output out;

  // Batch 1: one prefill step of the whole prompt, then decode steps.
  check(kv->add_sequence(1), "sequence");
  std::vector<std::int32_t> prompt;
  for (std::int64_t i = 0; i < a.prompt_tokens; ++i) prompt.push_back(synthetic_token(i, c.vocab));
  auto t0 = clock_type::now();
  double cpu0 = process_cpu_seconds();
  check(dec.step({{1, prompt, false}}, out), "prefill");
  const double prefill_s = seconds_since(t0);
  const double prefill_cpu_s = process_cpu_seconds() - cpu0;
  t0 = clock_type::now();
  cpu0 = process_cpu_seconds();
  for (std::int64_t s = 0; s < a.decode_steps; ++s)
    check(dec.step({{1, {synthetic_token(a.prompt_tokens + s, c.vocab)}, false}}, out), "decode");
  const double decode_s = seconds_since(t0);
  const double decode_cpu_s = process_cpu_seconds() - cpu0;
  kv->release(1);

  // Batch B: B sequences with 16-token prompts (one step), then decode steps of B tokens.
  std::vector<step_entry> batch;
  for (std::int64_t b = 0; b < a.batch; ++b) {
    const sequence_id id = static_cast<sequence_id>(100 + b);
    check(kv->add_sequence(id), "sequence");
    std::vector<std::int32_t> p;
    for (std::int64_t i = 0; i < 16; ++i) p.push_back(synthetic_token(b * 16 + i, c.vocab));
    batch.push_back({id, p, false});
  }
  check(dec.step(batch, out), "batch prefill");
  t0 = clock_type::now();
  cpu0 = process_cpu_seconds();
  for (std::int64_t s = 0; s < a.decode_steps; ++s) {
    for (std::int64_t b = 0; b < a.batch; ++b)
      batch[static_cast<std::size_t>(b)].tokens = {
          synthetic_token(1000 + s * a.batch + b, c.vocab)};
    check(dec.step(batch, out), "batch decode");
  }
  const double batch_s = seconds_since(t0);
  const double batch_cpu_s = process_cpu_seconds() - cpu0;

  std::printf(
      "{\"kernels\": \"%s\", \"numerics\": \"%s\", \"threads\": %d, \"requantized_q8\": %s, "
      "\"repacked_matrices\": %d, "
      "\"prompt_tokens\": %lld, \"decode_steps\": %lld, \"batch\": %lld, "
      "\"prefill_tok_s\": %.3f, \"decode_tok_s\": %.3f, \"batch_decode_tok_s\": %.3f, "
      "\"prefill_cpu_tok_s\": %.3f, \"decode_cpu_tok_s\": %.3f, \"batch_decode_cpu_tok_s\": %.3f, "
      "\"weight_bytes_per_token\": %llu, \"prepare_s\": %.3f}\n",
      std::string{cpu_kernel_set_name(a.options.kernels)}.c_str(),
      a.options.numerics == cpu_matmul_numerics::exact_f32 ? "exact" : "int8", threads,
      a.requantize ? "true" : "false", repacked, static_cast<long long>(a.prompt_tokens),
      static_cast<long long>(a.decode_steps), static_cast<long long>(a.batch),
      static_cast<double>(a.prompt_tokens) / prefill_s,
      static_cast<double>(a.decode_steps) / decode_s,
      static_cast<double>(a.decode_steps * a.batch) / batch_s,
      static_cast<double>(a.prompt_tokens) / prefill_cpu_s,
      static_cast<double>(a.decode_steps) / decode_cpu_s,
      static_cast<double>(a.decode_steps * a.batch) / batch_cpu_s,
      static_cast<unsigned long long>(weight_bytes), prepare_s);
  return 0;
}
