#include "kernels/tokenizer/hf_tokenizer_json.hpp"

#include "kernels/tokenizer/gguf_tokenizer.hpp"
#include "kernels/tokenizer/pre_tokenizer.hpp"

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>

namespace bastion::kernels::tokenizer {
namespace {

using json = nlohmann::json;

status bad(std::string message) {
  return {status_code::invalid_argument, "tokenizer.json: " + std::move(message)};
}
status unsupported(std::string message) {
  return {status_code::unsupported, "tokenizer.json: " + std::move(message)};
}

// The value of `key` in `object` when it is present and not null.
const json* member(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  const auto& fields = object.get_ref<const json::object_t&>();
  const auto it = fields.find(key);
  if (it == fields.end() || it->second.is_null()) return nullptr;
  return &it->second;
}

bool flag(const json& object, const char* key, bool fallback) {
  const json* v = member(object, key);
  return v && v->is_boolean() ? v->get<bool>() : fallback;
}

std::string type_of(const json& node) {
  const json* t = member(node, "type");
  return t && t->is_string() ? t->get<std::string>() : std::string{};
}

// A literal string as a PCRE2 pattern: metacharacters escaped, everything else as is.
std::string escape_literal(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string_view{"\\^$.|?*+()[]{}-/#"}.find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

status add_pre_tokenizer(const json& node, std::vector<std::string>& patterns, bool& byte_level,
                         int depth) {
  if (depth > 8) return bad("pre_tokenizer nests too deeply");
  const std::string type = type_of(node);
  if (type == "Sequence") {
    const json* list = member(node, "pretokenizers");
    if (!list || !list->is_array()) return bad("pre_tokenizer Sequence without a list");
    for (const auto& step : *list) {
      if (auto st = add_pre_tokenizer(step, patterns, byte_level, depth + 1); !st) return st;
    }
    return status::ok();
  }
  if (type == "ByteLevel") {
    if (flag(node, "add_prefix_space", false)) {
      return unsupported("ByteLevel pre_tokenizer with add_prefix_space");
    }
    byte_level = true;
    if (flag(node, "use_regex", true)) patterns.emplace_back(gpt2_pattern());
    return status::ok();
  }
  if (type == "Digits") {
    patterns.emplace_back(flag(node, "individual_digits", false) ? "\\p{N}" : "\\p{N}+");
    return status::ok();
  }
  if (type == "Split") {
    const json* behavior = member(node, "behavior");
    if (!behavior || !behavior->is_string() || behavior->get<std::string>() != "Isolated") {
      return unsupported("Split pre_tokenizer with a behavior other than Isolated");
    }
    if (flag(node, "invert", false)) return unsupported("Split pre_tokenizer with invert");
    const json* pattern = member(node, "pattern");
    const json* regex = pattern ? member(*pattern, "Regex") : nullptr;
    const json* literal = pattern ? member(*pattern, "String") : nullptr;
    if (regex && regex->is_string()) {
      patterns.push_back(regex->get<std::string>());
    } else if (literal && literal->is_string()) {
      patterns.push_back(escape_literal(literal->get<std::string>()));
    } else {
      return bad("Split pre_tokenizer without a Regex or String pattern");
    }
    return status::ok();
  }
  return unsupported("pre_tokenizer type '" + type + "'");
}

bool decoder_is_byte_level(const json& node, int depth) {
  if (depth > 8) return false;
  const std::string type = type_of(node);
  if (type == "ByteLevel") return true;
  if (type != "Sequence") return false;
  const json* list = member(node, "decoders");
  if (!list || !list->is_array()) return false;
  for (const auto& d : *list)
    if (decoder_is_byte_level(d, depth + 1)) return true;
  return false;
}

// BOS from a TemplateProcessing post-processor whose "single" template starts with a special
// token; nothing from ByteLevel (offsets only). Templates that append tokens are refused.
status read_post_processor(const json& node, tokenizer_spec& spec,
                           const std::map<std::string, token_id>& ids, int depth) {
  if (depth > 8) return bad("post_processor nests too deeply");
  const std::string type = type_of(node);
  if (type == "ByteLevel") return status::ok();
  if (type == "Sequence") {
    const json* list = member(node, "processors");
    if (!list || !list->is_array()) return bad("post_processor Sequence without a list");
    for (const auto& p : *list) {
      if (auto st = read_post_processor(p, spec, ids, depth + 1); !st) return st;
    }
    return status::ok();
  }
  if (type != "TemplateProcessing") return unsupported("post_processor type '" + type + "'");
  const json* single = member(node, "single");
  if (!single || !single->is_array()) return bad("TemplateProcessing without a single template");
  for (std::size_t i = 0; i < single->size(); ++i) {
    const json* special = member((*single)[i], "SpecialToken");
    if (!special) continue;
    if (i != 0) return unsupported("TemplateProcessing that adds tokens after the text");
    const json* name = member(*special, "id");
    if (!name || !name->is_string()) return bad("TemplateProcessing special token without id");
    const auto it = ids.find(name->get<std::string>());
    if (it == ids.end()) {
      return bad("TemplateProcessing names '" + name->get<std::string>() +
                 "', which is not a token");
    }
    spec.bos = it->second;
    spec.add_bos = true;
  }
  return status::ok();
}

status parse(const json& root, tokenizer_spec& out, const tokenizer_limits& limits) {
  tokenizer_spec spec;
  spec.pre_name = "tokenizer.json";
  spec.use_pre_patterns = true;
  const json* model = member(root, "model");
  if (!model || !model->is_object()) return bad("no model section");
  if (type_of(*model) != "BPE") {
    return unsupported("model type '" + type_of(*model) + "'; only BPE is supported");
  }
  if (flag(*model, "byte_fallback", false)) return unsupported("BPE with byte_fallback");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json* v = member(*model, key);
    if (v && !(v->is_string() && v->get<std::string>().empty())) {
      return unsupported(std::string{"BPE with "} + key);
    }
  }
  if (const json* d = member(*model, "dropout"); d && !(d->is_number() && d->get<double>() == 0)) {
    return unsupported("BPE with dropout");
  }
  spec.ignore_merges = flag(*model, "ignore_merges", false);

  // Vocabulary: text -> id, then added tokens, which may reuse an id (same text) or add ids.
  const json* vocab = member(*model, "vocab");
  if (!vocab || !vocab->is_object()) return bad("model.vocab is not an object");
  std::vector<std::string> texts;
  std::vector<bool> present;
  std::vector<token_kind> kinds;
  std::map<std::string, token_id> ids;
  const auto place = [&](const std::string& text, const json& id_value, token_kind kind,
                         const char* where) -> status {
    if (!id_value.is_number_unsigned() || id_value.get<std::uint64_t>() >= limits.tokens_max) {
      return bad(std::string{where} + " '" + text.substr(0, 40) + "' has id " + id_value.dump() +
                 ", not an id below " + std::to_string(limits.tokens_max));
    }
    const auto id = static_cast<std::size_t>(id_value.get<std::uint64_t>());
    if (id >= texts.size()) {
      texts.resize(id + 1);
      present.resize(id + 1, false);
      kinds.resize(id + 1, token_kind::normal);
    }
    if (present[id] && texts[id] != text) {
      return bad(std::string{where} + " '" + text.substr(0, 40) + "' has id " + std::to_string(id) +
                 ", already the id of '" + texts[id].substr(0, 40) + "'");
    }
    const auto [it, inserted] = ids.emplace(text, static_cast<token_id>(id));
    if (!inserted && it->second != static_cast<token_id>(id)) {
      return bad(std::string{where} + " '" + text.substr(0, 40) + "' has ids " +
                 std::to_string(it->second) + " and " + std::to_string(id));
    }
    texts[id] = text;
    present[id] = true;
    kinds[id] = kind;
    return status::ok();
  };
  for (const auto& [text, id] : vocab->items()) {
    if (auto st = place(text, id, token_kind::normal, "vocab token"); !st) return st;
  }
  if (const json* added = member(root, "added_tokens")) {
    if (!added->is_array()) return bad("added_tokens is not a list");
    for (const auto& a : *added) {
      const json* content = member(a, "content");
      const json* id = member(a, "id");
      if (!content || !content->is_string() || !id)
        return bad("an added token lacks content or id");
      for (const char* option : {"lstrip", "rstrip", "single_word"}) {
        if (flag(a, option, false)) {
          return unsupported("added token '" + content->get<std::string>() + "' with " + option);
        }
      }
      const token_kind kind =
          flag(a, "special", false) ? token_kind::control : token_kind::user_defined;
      if (auto st = place(content->get<std::string>(), *id, kind, "added token"); !st) return st;
    }
  }
  for (std::size_t i = 0; i < present.size(); ++i) {
    if (!present[i]) return bad("no token has id " + std::to_string(i) + " (ids must be dense)");
  }

  const json* merges = member(*model, "merges");
  if (merges && !merges->is_array()) return bad("model.merges is not a list");
  if (merges) {
    spec.merges.reserve(merges->size());
    for (std::size_t i = 0; i < merges->size(); ++i) {
      const json& m = (*merges)[i];
      std::string left, right;
      if (m.is_string()) {
        if (!split_merge(m.get<std::string>(), left, right)) {
          return bad("merge " + std::to_string(i) + " '" + m.get<std::string>().substr(0, 40) +
                     "' is not two tokens separated by a space");
        }
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        left = m[0].get<std::string>();
        right = m[1].get<std::string>();
      } else {
        return bad("merge " + std::to_string(i) + " is neither \"a b\" nor [\"a\", \"b\"]");
      }
      spec.merges.emplace_back(std::move(left), std::move(right));
    }
  }
  if (const json* unk = member(*model, "unk_token")) {
    if (!unk->is_string()) return bad("model.unk_token is not a string");
    const auto it = ids.find(unk->get<std::string>());
    if (it == ids.end())
      return bad("model.unk_token '" + unk->get<std::string>() + "' is not a token");
    spec.unk = it->second;
  }
  // Hugging Face's BPE turns a character missing from the vocabulary into unk_token when
  // there is one, and otherwise leaves it out.
  spec.missing_bytes = spec.unk ? missing_byte_policy::unknown : missing_byte_policy::skip;

  if (const json* normalizer = member(root, "normalizer")) {
    if (type_of(*normalizer) != "NFC") {
      return unsupported("normalizer '" + type_of(*normalizer) + "'");
    }
  }
  bool byte_level = false;
  if (const json* pre = member(root, "pre_tokenizer")) {
    if (auto st = add_pre_tokenizer(*pre, spec.pre_patterns, byte_level, 0); !st) return st;
  }
  const json* decoder = member(root, "decoder");
  if (!byte_level || !decoder || !decoder_is_byte_level(*decoder, 0)) {
    return unsupported("not a byte-level BPE (needs a ByteLevel pre_tokenizer and decoder)");
  }
  if (const json* post = member(root, "post_processor")) {
    if (auto st = read_post_processor(*post, spec, ids, 0); !st) return st;
  }

  spec.tokens = std::move(texts);
  spec.kinds = std::move(kinds);
  out = std::move(spec);
  return status::ok();
}

}  // namespace

status spec_from_tokenizer_json(std::string_view json_text, tokenizer_spec& out,
                                const tokenizer_limits& limits) {
  try {
    const json root = json::parse(json_text.begin(), json_text.end());
    return parse(root, out, limits);
  } catch (const json::exception& e) {
    return bad(std::string{"not valid JSON or of the wrong shape: "} + e.what());
  }
}

status spec_from_tokenizer_json_file(const std::string& path, tokenizer_spec& out,
                                     std::size_t file_bytes_max, const tokenizer_limits& limits) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {status_code::invalid_argument, path + ": cannot open"};
  const auto size = static_cast<std::size_t>(in.tellg());
  if (size > file_bytes_max) {
    return {status_code::invalid_argument, path + ": " + std::to_string(size) +
                                               " bytes, over the limit of " +
                                               std::to_string(file_bytes_max)};
  }
  std::string text(size, '\0');
  in.seekg(0);
  if (!in.read(text.data(), static_cast<std::streamsize>(size))) {
    return {status_code::invalid_argument, path + ": read failed"};
  }
  if (auto st = spec_from_tokenizer_json(text, out, limits); !st) {
    return {st.code(), path + ": " + st.message()};
  }
  return status::ok();
}

bool tokenizer_json_supported() noexcept { return true; }

}  // namespace bastion::kernels::tokenizer
