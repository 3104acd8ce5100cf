#include "kernels/tokenizer/gguf_tokenizer.hpp"

#include "kernels/tokenizer/pre_tokenizer.hpp"

#include <limits>

namespace bastion::kernels::tokenizer {
namespace {

status optional_id(const gguf::file& f, std::string_view key, std::optional<token_id>& out) {
  out.reset();
  if (!f.find(key)) return status::ok();
  std::uint64_t v = 0;
  if (auto st = f.get_uint(key, v); !st) return st;
  if (v > static_cast<std::uint64_t>(std::numeric_limits<token_id>::max())) {
    return {status_code::invalid_argument,
            std::string{key} + " = " + std::to_string(v) + " is not a valid token id"};
  }
  out = static_cast<token_id>(v);
  return status::ok();
}

}  // namespace

bool split_merge(std::string_view merge, std::string& left, std::string& right) {
  const auto space = merge.find(' ', 1);
  if (space == std::string_view::npos || space + 1 >= merge.size()) return false;
  left.assign(merge.substr(0, space));
  right.assign(merge.substr(space + 1));
  return true;
}

status spec_from_gguf(const gguf::file& f, tokenizer_spec& out) {
  tokenizer_spec spec;
  std::string model;
  if (auto st = f.get_string("tokenizer.ggml.model", model); !st) return st;
  if (model != "gpt2") {
    return {status_code::unsupported, f.path() + ": tokenizer.ggml.model '" + model +
                                          "' is not supported; only 'gpt2' (byte-level BPE) is"};
  }
  if (f.find("tokenizer.ggml.pre")) {
    if (auto st = f.get_string("tokenizer.ggml.pre", spec.pre_name); !st) return st;
  }
  const pre_tokenizer_preset* preset = nullptr;
  if (auto st = find_preset(spec.pre_name, preset); !st) {
    return {st.code(), f.path() + ": tokenizer.ggml.pre: " + st.message()};
  }
  spec.ignore_merges = preset->ignore_merges;
  spec.add_bos = preset->add_bos;

  const std::vector<std::string>* tokens = nullptr;
  if (auto st = f.get_strings("tokenizer.ggml.tokens", tokens); !st) return st;
  spec.tokens = *tokens;

  if (f.find("tokenizer.ggml.token_type")) {
    const std::vector<std::int64_t>* types = nullptr;
    if (auto st = f.get_ints("tokenizer.ggml.token_type", types); !st) return st;
    if (types->size() != tokens->size()) {
      return {status_code::invalid_argument, f.path() + ": tokenizer.ggml.token_type has " +
                                                 std::to_string(types->size()) + " entries for " +
                                                 std::to_string(tokens->size()) + " tokens"};
    }
    spec.kinds.reserve(types->size());
    for (std::size_t i = 0; i < types->size(); ++i) {
      const std::int64_t t = (*types)[i];
      if (t < 1 || t > 6) {
        return {status_code::invalid_argument, f.path() + ": tokenizer.ggml.token_type[" +
                                                   std::to_string(i) + "] = " + std::to_string(t) +
                                                   " is not a token type"};
      }
      spec.kinds.push_back(static_cast<token_kind>(t));
    }
  }

  const std::vector<std::string>* merges = nullptr;
  if (auto st = f.get_strings("tokenizer.ggml.merges", merges); !st) return st;
  spec.merges.reserve(merges->size());
  for (std::size_t i = 0; i < merges->size(); ++i) {
    std::string left, right;
    if (!split_merge((*merges)[i], left, right)) {
      return {status_code::invalid_argument,
              f.path() + ": tokenizer.ggml.merges[" + std::to_string(i) + "] '" +
                  (*merges)[i].substr(0, 40) + "' is not two tokens separated by a space"};
    }
    spec.merges.emplace_back(std::move(left), std::move(right));
  }

  const std::pair<const char*, std::optional<token_id>*> ids[] = {
      {"tokenizer.ggml.bos_token_id", &spec.bos},
      {"tokenizer.ggml.eos_token_id", &spec.eos},
      {"tokenizer.ggml.eot_token_id", &spec.eot},
      {"tokenizer.ggml.eom_token_id", &spec.eom},
      {"tokenizer.ggml.unknown_token_id", &spec.unk},
      {"tokenizer.ggml.padding_token_id", &spec.pad},
  };
  for (const auto& [key, id] : ids) {
    if (auto st = optional_id(f, key, *id); !st) return {st.code(), f.path() + ": " + st.message()};
  }
  if (f.find("tokenizer.ggml.add_bos_token")) {
    if (auto st = f.get_bool("tokenizer.ggml.add_bos_token", spec.add_bos); !st) return st;
  }
  if (f.find("tokenizer.chat_template")) {
    if (auto st = f.get_string("tokenizer.chat_template", spec.chat_template); !st) return st;
  }
  out = std::move(spec);
  return status::ok();
}

status load_gguf_tokenizer(const gguf::file& file, std::unique_ptr<bpe_tokenizer>& out,
                           const tokenizer_limits& limits) {
  tokenizer_spec spec;
  if (auto st = spec_from_gguf(file, spec); !st) return st;
  if (auto st = bpe_tokenizer::create(std::move(spec), out, limits); !st) {
    return {st.code(), file.path() + ": " + st.message()};
  }
  return status::ok();
}

}  // namespace bastion::kernels::tokenizer
