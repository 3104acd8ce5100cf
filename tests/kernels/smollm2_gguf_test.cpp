// The real test model opens through our GGUF reader with the shape the engine expects, and
// every tensor dequantizes to finite values. Skips (exit 77) when the model is not fetched.

#include "kernels/model/gguf_file.hpp"
#include "tests/support/model_path.hpp"

#include <cmath>
#include <cstdio>
#include <map>
#include <vector>

using namespace bastion::kernels;

int main() {
  const std::string path = bastion::test::smollm2_path();
  if (!bastion::test::file_exists(path)) {
    std::printf("SKIP: %s not found (run scripts/fetch-model)\n", path.c_str());
    return 77;
  }
  int passed = 0, failed = 0;
  auto check = [&](bool ok, const std::string& what) {
    std::printf("%s %s\n", ok ? "PASS" : "FAIL", what.c_str());
    (ok ? passed : failed)++;
  };
  std::unique_ptr<gguf::file> f;
  auto st = gguf::file::open(path, f);
  check(bool(st), "opens: " + st.message());
  if (!st) return 1;
  std::string arch;
  std::uint64_t blocks = 0, dim = 0, heads = 0, kv_heads = 0;
  check(f->get_string("general.architecture", arch) && arch == "llama", "architecture llama");
  check(f->get_uint("llama.block_count", blocks) && blocks == 30, "30 blocks");
  check(f->get_uint("llama.embedding_length", dim) && dim == 576, "dim 576");
  check(f->get_uint("llama.attention.head_count", heads) && heads == 9, "9 heads");
  check(f->get_uint("llama.attention.head_count_kv", kv_heads) && kv_heads == 3, "3 kv heads");
  const std::vector<std::string>* tokens = nullptr;
  check(f->get_strings("tokenizer.ggml.tokens", tokens) && tokens->size() == 49152, "49152 tokens");
  check(f->tensors().size() == 272, "272 tensors");
  std::map<std::string, int> by_type;
  bool finite = true;
  std::vector<float> row;
  for (const auto& t : f->tensors()) {
    ++by_type[std::string{traits_of(static_cast<std::uint32_t>(t.type))->name}];
    row.resize(static_cast<std::size_t>(t.n_elements));
    dequantize_row(t.type, f->data(t), row.data(), static_cast<std::int64_t>(t.n_elements));
    for (float x : row)
      if (!std::isfinite(x)) finite = false;
  }
  check(by_type["Q4_1"] == 210 && by_type["F32"] == 61 && by_type["Q8_0"] == 1,
        "tensor types: 210 Q4_1, 61 F32, 1 Q8_0");
  check(finite, "every tensor dequantizes to finite values");
  const auto* emb = f->find_tensor("token_embd.weight");
  check(emb && emb->dims == std::vector<std::int64_t>{576, 49152}, "token_embd is 576 x 49152");
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
