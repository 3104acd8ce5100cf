#include "kernels/tokenizer/bpe_tokenizer.hpp"

#include "kernels/tokenizer/byte_level.hpp"

#include <cassert>
#include <cstdio>

namespace bastion::kernels::tokenizer {
namespace {

// Token texts quoted in messages: bounded, so a hostile 64 KiB token cannot flood a log.
std::string quote(std::string_view text) {
  constexpr std::size_t shown_max = 40;
  std::string q = "'";
  q.append(text.substr(0, shown_max));
  if (text.size() > shown_max) q += "...";
  q += "'";
  return q;
}

status check_special_id(const char* what, const std::optional<token_id>& id, std::size_t n) {
  if (id && (*id < 0 || static_cast<std::size_t>(*id) >= n)) {
    return {status_code::invalid_argument, std::string{what} + " token id " + std::to_string(*id) +
                                               " is outside the vocabulary of " +
                                               std::to_string(n) + " tokens"};
  }
  return status::ok();
}

bool is_special_kind(token_kind k) {
  return k == token_kind::control || k == token_kind::unknown || k == token_kind::user_defined;
}

}  // namespace

status bpe_tokenizer::create(tokenizer_spec spec, std::unique_ptr<bpe_tokenizer>& out,
                             const tokenizer_limits& limits) {
  const std::size_t n = spec.tokens.size();
  if (n == 0) return {status_code::invalid_argument, "the vocabulary is empty"};
  if (n > limits.tokens_max) {
    return {status_code::invalid_argument, "the vocabulary has " + std::to_string(n) +
                                               " tokens, over the limit of " +
                                               std::to_string(limits.tokens_max)};
  }
  if (!spec.kinds.empty() && spec.kinds.size() != n) {
    return {status_code::invalid_argument, "the token kind list has " +
                                               std::to_string(spec.kinds.size()) + " entries for " +
                                               std::to_string(n) + " tokens"};
  }
  if (spec.merges.size() > limits.merges_max) {
    return {status_code::invalid_argument, "there are " + std::to_string(spec.merges.size()) +
                                               " merges, over the limit of " +
                                               std::to_string(limits.merges_max)};
  }
  const std::pair<const char*, const std::optional<token_id>*> special_ids[] = {
      {"bos", &spec.bos}, {"eos", &spec.eos},     {"eot", &spec.eot},
      {"eom", &spec.eom}, {"unknown", &spec.unk}, {"padding", &spec.pad}};
  for (const auto& [what, id] : special_ids) {
    if (auto st = check_special_id(what, *id, n); !st) return st;
  }
  if (spec.add_bos && !spec.bos) {
    return {status_code::invalid_argument, "the model asks for a BOS token but names none"};
  }

  std::unique_ptr<bpe_tokenizer> t{new bpe_tokenizer()};
  t->limits_ = limits;
  t->texts_ = std::move(spec.tokens);
  t->kinds_ =
      spec.kinds.empty() ? std::vector<token_kind>(n, token_kind::normal) : std::move(spec.kinds);
  t->bytes_.resize(n);
  t->by_text_.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& text = t->texts_[i];
    const auto id = static_cast<token_id>(i);
    if (text.empty()) {
      return {status_code::invalid_argument, "token " + std::to_string(i) + " has empty text"};
    }
    if (text.size() > limits.token_bytes_max) {
      return {status_code::invalid_argument,
              "token " + std::to_string(i) + " has " + std::to_string(text.size()) +
                  " bytes of text, over the limit of " + std::to_string(limits.token_bytes_max)};
    }
    const auto [it, inserted] = t->by_text_.emplace(std::string_view{text}, id);
    if (!inserted) {
      return {status_code::invalid_argument, "tokens " + std::to_string(it->second) + " and " +
                                                 std::to_string(i) + " have the same text " +
                                                 quote(text)};
    }
    const token_kind k = t->kinds_[i];
    switch (k) {
      case token_kind::normal:
      case token_kind::byte:
        // Hugging Face's ByteLevel decoder keeps a token's literal text when it is not in the
        // byte-level alphabet; so do we.
        if (!byte_level::decode_spelling(text, t->bytes_[i])) t->bytes_[i] = text;
        break;
      case token_kind::control:
      case token_kind::unknown:
      case token_kind::user_defined:
        t->bytes_[i] = text;  // literal text: added tokens are not byte-level spelled
        t->specials_.add(text, id, k != token_kind::user_defined);
        break;
      case token_kind::unused:
        break;
      default:
        return {status_code::invalid_argument, "token " + std::to_string(i) + " has unknown kind " +
                                                   std::to_string(static_cast<int>(k))};
    }
  }

  t->merges_.reserve(spec.merges.size());
  for (std::size_t r = 0; r < spec.merges.size(); ++r) {
    const auto& [left, right] = spec.merges[r];
    const auto describe = [&] {
      return "merge " + std::to_string(r) + " (" + quote(left) + ", " + quote(right) + ")";
    };
    const auto l = t->find(left), rt = t->find(right);
    if (!l || !rt) {
      return {status_code::invalid_argument,
              describe() + ": " + quote(!l ? left : right) + " is not a token"};
    }
    const auto merged = t->find(left + right);
    if (!merged) {
      return {status_code::invalid_argument,
              describe() + ": the merged text " + quote(left + right) + " is not a token"};
    }
    const auto [it, inserted] =
        t->merges_.emplace(pair_key(*l, *rt), merge_result{static_cast<std::int32_t>(r), *merged});
    if (!inserted) {
      return {status_code::invalid_argument,
              describe() + " repeats merge " + std::to_string(it->second.rank)};
    }
  }

  // Each byte's own token; what happens to bytes without one is the spec's policy.
  std::string missing;
  for (unsigned b = 0; b < 256; ++b) {
    std::string spelling;
    byte_level::append_spelling(spelling, std::string_view{reinterpret_cast<const char*>(&b), 1});
    const auto id = t->find(spelling);
    if (id && (t->kinds_[*id] == token_kind::normal || t->kinds_[*id] == token_kind::byte)) {
      t->byte_token_[b] = *id;
      continue;
    }
    ++t->bytes_without_token_;
    t->byte_token_[b] =
        spec.missing_bytes == missing_byte_policy::unknown && spec.unk ? *spec.unk : -1;
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", b);
    missing += (missing.empty() ? "" : ", ") + std::string{hex};
  }
  if (!missing.empty() && spec.missing_bytes == missing_byte_policy::unknown && !spec.unk) {
    return {status_code::invalid_argument, "the vocabulary has no token for bytes " + missing +
                                               " and no unknown token to stand for them"};
  }
  t->missing_bytes_ = spec.missing_bytes;

  if (spec.use_pre_patterns) {
    if (auto st = pre_tokenizer::from_patterns(spec.pre_patterns, spec.pre_name, t->pre_); !st)
      return st;
  } else if (auto st = pre_tokenizer::from_name(spec.pre_name, t->pre_); !st) {
    return st;
  }

  t->end_of_generation_.assign(n, false);
  for (const auto& id : {spec.eos, spec.eot, spec.eom})
    if (id) t->end_of_generation_[static_cast<std::size_t>(*id)] = true;
  for (std::string_view text : {"<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>",
                                "<|end_of_text|>", "<end_of_turn>"}) {
    const auto id = t->find(text);
    if (id && is_special_kind(t->kinds_[*id])) t->end_of_generation_[*id] = true;
  }

  t->bos_ = spec.bos;
  t->eos_ = spec.eos;
  t->unk_ = spec.unk;
  t->pad_ = spec.pad;
  t->add_bos_ = spec.add_bos;
  t->ignore_merges_ = spec.ignore_merges;
  t->chat_template_ = std::move(spec.chat_template);
  out = std::move(t);
  return status::ok();
}

std::string_view bpe_tokenizer::token_text(token_id id) const {
  assert(contains(id));
  return texts_[static_cast<std::size_t>(id)];
}

token_kind bpe_tokenizer::kind(token_id id) const {
  assert(contains(id));
  return kinds_[static_cast<std::size_t>(id)];
}

std::optional<token_id> bpe_tokenizer::find(std::string_view text) const {
  const auto it = by_text_.find(text);
  if (it == by_text_.end()) return std::nullopt;
  return it->second;
}

bool bpe_tokenizer::is_end_of_generation(token_id id) const {
  return contains(id) && end_of_generation_[static_cast<std::size_t>(id)];
}

status bpe_tokenizer::append_token_bytes(token_id id, std::string& out, bool render_special) const {
  if (!contains(id)) {
    return {status_code::invalid_argument, "token id " + std::to_string(id) +
                                               " is outside the vocabulary of " +
                                               std::to_string(size()) + " tokens"};
  }
  const token_kind k = kinds_[static_cast<std::size_t>(id)];
  if (!render_special && (k == token_kind::control || k == token_kind::unknown)) {
    return status::ok();
  }
  out += bytes_[static_cast<std::size_t>(id)];
  return status::ok();
}

status bpe_tokenizer::decode(const std::vector<token_id>& ids, std::string& out,
                             bool render_special) const {
  out.clear();
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (auto st = append_token_bytes(ids[i], out, render_special); !st) {
      out.clear();
      return {st.code(), "position " + std::to_string(i) + ": " + st.message()};
    }
  }
  return status::ok();
}

}  // namespace bastion::kernels::tokenizer
