// bastion-run: load a model and generate, for people (text streams as it comes) and for
// scripts (--json prints one JSON object at the end).
//
//   bastion-run --model PATH --prompt "What is the capital of France?"
//   bastion-run --raw --prompt "Once upon a time" --max-tokens 64 --temperature 0.8 --seed 7
//
// PATH is a .gguf file or a Hugging Face folder; the default is the model scripts/fetch-model
// puts in the cache.

#include "kernels/bundle/model_bundle.hpp"
#include "kernels/engine/batch_runner.hpp"

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>

namespace po = boost::program_options;
using namespace bastion::kernels;

namespace {

std::string default_model() {
  const char* cache = std::getenv("BASTION_MODEL_CACHE");
  const char* home = std::getenv("HOME");
  const std::string dir =
      cache && *cache ? cache : std::string{home ? home : "/root"} + "/.cache/bastion/models";
  return dir + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

const char* reason_name(finish_reason r) {
  switch (r) {
    case finish_reason::end_of_generation:
      return "stop";
    case finish_reason::stop_string:
      return "stop";
    case finish_reason::max_tokens:
      return "length";
    case finish_reason::context_full:
      return "length";
    case finish_reason::error:
      return "error";
  }
  return "error";
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path = default_model(), prompt, system;
  bool raw = false, json = false;
  runner_request req;
  std::vector<std::string> stops;
  std::int64_t kv_blocks = 1024;
  po::options_description desc("bastion-run options");
  desc.add_options()("help,h", "print this help")("model",
                                                  po::value(&model_path)->default_value(model_path),
                                                  ".gguf file or Hugging Face folder")(
      "prompt,p", po::value(&prompt), "the prompt (a user message unless --raw)")(
      "system", po::value(&system), "system message (chat only)")(
      "raw", po::bool_switch(&raw), "complete the prompt as text, without the chat template")(
      "max-tokens,n", po::value(&req.max_tokens)->default_value(256), "tokens to generate at most")(
      "temperature", po::value(&req.sampling.temperature)->default_value(0.0f), "0 = greedy")(
      "top-k", po::value(&req.sampling.top_k)->default_value(0), "0 = off")(
      "top-p", po::value(&req.sampling.top_p)->default_value(1.0f), "nucleus sampling mass")(
      "repeat-penalty", po::value(&req.sampling.repetition_penalty)->default_value(1.0f),
      "1 = off")("seed", po::value(&req.sampling.seed)->default_value(0),
                 "sampling seed (runs repeat)")("stop", po::value(&stops)->composing(),
                                                "stop string (repeatable)")(
      "kv-blocks", po::value(&kv_blocks)->default_value(kv_blocks),
      "KV cache size in 16-token blocks")(
      "json", po::bool_switch(&json), "print one JSON object with the result instead of streaming");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "bastion-run: " << e.what() << "\n" << desc;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  if (prompt.empty()) {
    std::cerr << "bastion-run: --prompt is required\n" << desc;
    return 2;
  }
  req.stop_strings = stops;

  const auto t_load = std::chrono::steady_clock::now();
  model_bundle b;
  if (auto s = load_model_bundle(model_path, b); !s) {
    std::cerr << "bastion-run: cannot load model: " << s.message() << "\n";
    return 2;
  }
  if (raw) {
    if (auto s = encode_prompt(b, prompt, req.prompt); !s) {
      std::cerr << "bastion-run: " << s.message() << "\n";
      return 2;
    }
  } else {
    std::vector<tokenizer::chat_message> msgs;
    if (!system.empty()) msgs.push_back({"system", system});
    msgs.push_back({"user", prompt});
    if (auto s = encode_chat(b, msgs, req.prompt); !s) {
      std::cerr << "bastion-run: " << s.message() << "\n";
      return 2;
    }
  }
  auto be = make_cpu_backend();
  std::unique_ptr<kv_cache> kv;
  const auto& cfg = b.weights.config;
  if (auto s = kv_cache::create({cfg.n_layers, cfg.kv_dim(), 16, kv_blocks, 16}, kv); !s) {
    std::cerr << "bastion-run: " << s.message() << "\n";
    return 2;
  }
  decoder dec{b.weights, *be, *kv};
  runner_options opts;
  opts.batch_sequences_max = 1;
  opts.end_of_generation_ids = b.end_of_generation_ids;
  opts.detokenize = make_detokenizer(b);
  batch_runner runner{dec, opts};
  req.id = 1;
  if (auto s = runner.add(req); !s) {
    std::cerr << "bastion-run: request refused: " << s.message() << "\n";
    return 2;
  }
  const auto t_start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point t_first{};
  std::string text;
  runner_event done;
  std::vector<runner_event> events;
  while (!runner.idle()) {
    events.clear();
    if (auto s = runner.step(events); !s) {
      std::cerr << "bastion-run: step failed: " << s.message() << "\n";
      return 1;
    }
    for (auto& e : events) {
      if (e.what == runner_event::kind::token && t_first == std::chrono::steady_clock::time_point{})
        t_first = std::chrono::steady_clock::now();
      text += e.text;
      if (!json) std::cout << e.text << std::flush;
      if (e.what == runner_event::kind::finished) done = e;
    }
  }
  const auto t_end = std::chrono::steady_clock::now();
  using ms = std::chrono::duration<double, std::milli>;
  const double load_ms = ms(t_start - t_load).count();
  const double ttft_ms =
      t_first == std::chrono::steady_clock::time_point{} ? 0.0 : ms(t_first - t_start).count();
  const double decode_ms =
      ms(t_end - (t_first == std::chrono::steady_clock::time_point{} ? t_start : t_first)).count();
  const double tps = done.completion_tokens > 1
                         ? (static_cast<double>(done.completion_tokens) - 1.0) * 1000.0 / decode_ms
                         : 0.0;
  if (json) {
    nlohmann::json j{{"text", text},
                     {"finish_reason", reason_name(done.reason)},
                     {"prompt_tokens", done.prompt_tokens},
                     {"completion_tokens", done.completion_tokens},
                     {"load_ms", load_ms},
                     {"time_to_first_token_ms", ttft_ms},
                     {"decode_tokens_per_s", tps},
                     {"model", model_path}};
    if (done.reason == finish_reason::error) j["error"] = done.error.message();
    std::cout << j.dump() << std::endl;
  } else {
    std::cout << std::endl;
    std::cerr << "[" << done.prompt_tokens << " prompt tokens, " << done.completion_tokens
              << " generated, finish " << reason_name(done.reason) << "; load "
              << static_cast<int>(load_ms) << " ms, first token " << static_cast<int>(ttft_ms)
              << " ms, " << tps << " tokens/s]\n";
  }
  return done.reason == finish_reason::error ? 1 : 0;
}
