#pragma once
// Byte-level BPE (GPT-2 style, as SmolLM2, Qwen2 and Llama 3 use it). Encoding: special and
// added tokens are cut out of the text first (leftmost-longest), the rest is split by the
// pre-tokenizer, each piece is spelled in the byte-level alphabet and merged by rank (lowest
// rank first, leftmost first among equals, as Hugging Face and llama.cpp do). Decoding maps
// each token back to the bytes it stands for. A tokenizer is immutable once created, so one
// instance may serve any number of threads.

#include "kernels/status.hpp"
#include "kernels/tokenizer/pre_tokenizer.hpp"
#include "kernels/tokenizer/special_token_matcher.hpp"
#include "kernels/tokenizer/tokenizer_spec.hpp"

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace bastion::kernels::tokenizer {

class bpe_tokenizer {
 public:
  /// Validates `spec` and builds the tokenizer. Refused with a status naming the token,
  /// merge or id at fault: an empty vocabulary, empty or duplicate token texts, merges whose
  /// parts or result are not tokens, repeated merges, special ids outside the vocabulary,
  /// add_bos without a BOS token, bytes without a token when there is no unknown token to
  /// stand for them under missing_byte_policy::unknown, anything over `limits`, an unknown
  /// pre-tokenizer name.
  static status create(tokenizer_spec spec, std::unique_ptr<bpe_tokenizer>& out,
                       const tokenizer_limits& limits = {});

  /// Replaces `out` with the tokens of `text` (any bytes; not necessarily valid UTF-8).
  /// add_bos: start with the BOS token (a status if the model has none). parse_special:
  /// control tokens written in the text become those tokens; otherwise they are spelled as
  /// text. User-defined (added) tokens are recognised either way, as in llama.cpp.
  status encode(std::string_view text, bool add_bos, bool parse_special,
                std::vector<token_id>& out) const;

  /// encode with parse_special, except that control tokens are recognised only where they lie
  /// wholly inside one of `control_ranges` ([begin, end) byte offsets, sorted, not
  /// overlapping): pass a rendered chat prompt's template_ranges so that "<|im_end|>" typed
  /// by a user stays text and cannot end a turn. Outside control tokens the ids are the same
  /// as encode's on the same text.
  status encode_with_control_ranges(
      std::string_view text, bool add_bos,
      const std::vector<std::pair<std::size_t, std::size_t>>& control_ranges,
      std::vector<token_id>& out) const;

  /// Replaces `out` with the bytes `ids` stand for. render_special: control tokens appear as
  /// their text ("<|im_end|>"); otherwise as nothing. An id outside the vocabulary is an
  /// error naming its position. The bytes need not be valid UTF-8 (a character may be split
  /// across the ids given); see stream_detokenizer for text that must be valid.
  status decode(const std::vector<token_id>& ids, std::string& out,
                bool render_special = true) const;

  /// Appends the bytes of one token (as decode does). An id outside the vocabulary: status.
  status append_token_bytes(token_id id, std::string& out, bool render_special) const;

  bool contains(token_id id) const noexcept {
    return id >= 0 && static_cast<std::size_t>(id) < texts_.size();
  }
  std::size_t size() const noexcept { return texts_.size(); }
  /// The token's vocabulary text ("Ġhello", "<|im_end|>"). REQUIRES: contains(id).
  std::string_view token_text(token_id id) const;
  /// REQUIRES: contains(id).
  token_kind kind(token_id id) const;
  /// The id whose vocabulary text is exactly `text`.
  std::optional<token_id> find(std::string_view text) const;

  /// True for tokens that end a generation: EOS, EOT and EOM when the model names them, and
  /// the non-normal tokens <|im_end|>, <|endoftext|>, <|eot_id|>, <|eom_id|>,
  /// <|end_of_text|>, <end_of_turn>.
  bool is_end_of_generation(token_id id) const;

  std::optional<token_id> bos() const noexcept { return bos_; }
  std::optional<token_id> eos() const noexcept { return eos_; }
  std::optional<token_id> unk() const noexcept { return unk_; }
  std::optional<token_id> pad() const noexcept { return pad_; }
  /// What the model asks for (GGUF add_bos_token, or the pre-tokenizer's default).
  bool add_bos_by_default() const noexcept { return add_bos_; }
  bool ignore_merges() const noexcept { return ignore_merges_; }
  /// How many of the 256 bytes have no token of their own (see missing_byte_policy).
  int bytes_without_token() const noexcept { return bytes_without_token_; }
  const pre_tokenizer& pre() const noexcept { return pre_; }
  const std::string& chat_template() const noexcept { return chat_template_; }
  const tokenizer_limits& limits() const noexcept { return limits_; }

  bpe_tokenizer(const bpe_tokenizer&) = delete;  // by_text_ holds views into texts_
  bpe_tokenizer& operator=(const bpe_tokenizer&) = delete;

 private:
  bpe_tokenizer() = default;

  struct merge_result {
    std::int32_t rank = 0;
    token_id merged = 0;
  };
  static std::uint64_t pair_key(token_id left, token_id right) {
    return (std::uint64_t(std::uint32_t(left)) << 32) | std::uint32_t(right);
  }

  status encode_special(std::string_view text, bool add_bos,
                        const special_token_matcher::policy& allowed,
                        std::vector<token_id>& out) const;
  struct scratch;  // buffers one encode call reuses across its pieces (bpe_encode.cpp)
  status encode_plain(std::string_view text, scratch& work, std::vector<token_id>& out) const;
  void encode_piece(std::string_view piece, scratch& work, std::vector<token_id>& out) const;

  std::vector<std::string> texts_;  // vocabulary text per id
  std::vector<token_kind> kinds_;
  std::vector<std::string> bytes_;                          // what each token decodes to
  std::unordered_map<std::string_view, token_id> by_text_;  // views into texts_
  std::unordered_map<std::uint64_t, merge_result> merges_;
  std::array<token_id, 256> byte_token_{};  // token of each single byte, or unk, or -1
  missing_byte_policy missing_bytes_ = missing_byte_policy::barrier;
  int bytes_without_token_ = 0;
  special_token_matcher specials_;
  std::vector<bool> end_of_generation_;
  pre_tokenizer pre_;
  std::optional<token_id> bos_, eos_, unk_, pad_;
  bool add_bos_ = false;
  bool ignore_merges_ = false;
  std::string chat_template_;
  tokenizer_limits limits_;
};

}  // namespace bastion::kernels::tokenizer
