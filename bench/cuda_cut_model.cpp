// cuda_cut_model: writes a smaller GGUF model made of the first N transformer blocks of a
// llama/qwen2 GGUF file, with its embeddings, output norm, output projection, tokenizer and
// every other metadata entry unchanged (block_count set to N). The GPU check carries such a
// cut of SmolLM2 (under 40 MB) because the GPU machine has no network and the working tree that
// travels there is bounded. Written with our own GGUF writer (kernels/model/gguf_writer).
//
//   build/bench/cuda_cut_model IN.gguf OUT.gguf N_LAYERS

#include "kernels/model/gguf_file.hpp"
#include "kernels/model/gguf_writer.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

using namespace bastion::kernels;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s IN.gguf OUT.gguf N_LAYERS\n", argv[0]);
    return 2;
  }
  const std::string in = argv[1], out = argv[2];
  const long keep = std::strtol(argv[3], nullptr, 10);
  std::unique_ptr<gguf::file> f;
  if (auto s = gguf::file::open(in, f); !s) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  std::string arch;
  if (auto s = f->get_string("general.architecture", arch); !s) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  std::uint64_t layers = 0;
  if (auto s = f->get_uint(arch + ".block_count", layers); !s) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  if (keep <= 0 || static_cast<std::uint64_t>(keep) > layers) {
    std::fprintf(stderr, "N_LAYERS must be in [1, %llu]\n",
                 static_cast<unsigned long long>(layers));
    return 2;
  }
  gguf::writer w;
  for (const auto& [key, value] : f->metadata()) {
    if (key == arch + ".block_count")
      w.set_u32(key, static_cast<std::uint32_t>(keep));
    else if (key == "general.name")
      w.set_string(key, value.s + " (first " + std::to_string(keep) + " layers)");
    else
      w.copy_value(key, value);
  }
  std::uint64_t bytes = 0;
  std::size_t tensors = 0;
  for (const auto& t : f->tensors()) {
    if (t.name.rfind("blk.", 0) == 0 && std::stol(t.name.substr(4)) >= keep) continue;
    const std::uint8_t* p = f->data(t);
    if (auto s = w.add_tensor(t.name, t.type, t.dims, std::vector<std::uint8_t>(p, p + t.n_bytes));
        !s) {
      std::fprintf(stderr, "%s\n", s.message().c_str());
      return 1;
    }
    bytes += t.n_bytes;
    ++tensors;
  }
  if (auto s = w.write(out); !s) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  std::printf("wrote %s: %ld of %llu layers, %zu tensors, %.1f MB of tensor data\n", out.c_str(),
              keep, static_cast<unsigned long long>(layers), tensors,
              static_cast<double>(bytes) / 1e6);
  return 0;
}
