#pragma once
// Small byte-level vocabularies for the tokenizer tests: every byte's token (ids 0..255, in
// byte order), then one token per merge result, then any special tokens asked for.

#include "kernels/tokenizer/bpe_tokenizer.hpp"
#include "kernels/tokenizer/byte_level.hpp"

#include <string>
#include <utility>
#include <vector>

namespace bastion::test {

inline std::string spelled(std::string_view bytes) {
  std::string s;
  kernels::tokenizer::byte_level::append_spelling(s, bytes);
  return s;
}

struct test_special {
  std::string text;
  kernels::tokenizer::token_kind kind;
};

/// `merges` are given as raw byte strings ("h", "e") and spelled in the byte-level alphabet.
inline kernels::tokenizer::tokenizer_spec make_spec(
    const std::vector<std::pair<std::string, std::string>>& merges,
    const std::vector<test_special>& specials = {}, const std::string& pre = "gpt2") {
  using namespace kernels::tokenizer;
  tokenizer_spec spec;
  spec.pre_name = pre;
  for (unsigned b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    spec.tokens.push_back(spelled(std::string_view{&c, 1}));
    spec.kinds.push_back(token_kind::normal);
  }
  for (const auto& [l, r] : merges) {
    spec.merges.emplace_back(spelled(l), spelled(r));
    const std::string merged = spelled(l + r);
    bool known = false;
    for (const auto& t : spec.tokens) known = known || t == merged;
    if (!known) {
      spec.tokens.push_back(merged);
      spec.kinds.push_back(token_kind::normal);
    }
  }
  for (const auto& s : specials) {
    spec.tokens.push_back(s.text);
    spec.kinds.push_back(s.kind);
  }
  return spec;
}

/// The id of a token by its raw bytes (normal tokens) in a tokenizer from make_spec.
inline kernels::tokenizer::token_id id_of(const kernels::tokenizer::bpe_tokenizer& t,
                                          std::string_view bytes) {
  const auto id = t.find(spelled(bytes));
  return id ? *id : -1;
}

}  // namespace bastion::test
