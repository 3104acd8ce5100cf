#pragma once
// Token streaming: a generated token may end in the middle of a UTF-8 character (byte-level
// BPE splits rare characters and emoji across tokens), and a client must never receive half
// a character. utf8_stream holds an incomplete tail (at most 3 bytes) until the bytes that
// complete it arrive; ill-formed bytes, which no later token can repair, become U+FFFD right
// away (one per maximal ill-formed subpart), so what it emits is always valid UTF-8.
// stream_detokenizer feeds it one token at a time.

#include "kernels/status.hpp"
#include "kernels/tokenizer/bpe_tokenizer.hpp"

#include <string>
#include <string_view>

namespace bastion::kernels::tokenizer {

class utf8_stream {
 public:
  /// Appends to `out` every character completed by `bytes` (after the held tail).
  void feed(std::string_view bytes, std::string& out);
  /// Ends the stream: a held incomplete tail becomes one U+FFFD.
  void finish(std::string& out);
  std::size_t held_bytes() const noexcept { return held_.size(); }

 private:
  std::string held_;  // an incomplete but so far valid sequence: at most 3 bytes
};

class stream_detokenizer {
 public:
  /// REQUIRES: `tokenizer` outlives this object.
  /// render_special: whether control tokens (<|im_end|>) appear in the text.
  explicit stream_detokenizer(const bpe_tokenizer& tokenizer, bool render_special = false)
      : tokenizer_(tokenizer), render_special_(render_special) {}

  /// Appends to `out` the text that token `id` completes. An id outside the vocabulary is an
  /// error and changes nothing.
  status push(token_id id, std::string& out);
  /// Ends the stream (see utf8_stream::finish).
  void finish(std::string& out) { stream_.finish(out); }
  std::size_t held_bytes() const noexcept { return stream_.held_bytes(); }

 private:
  const bpe_tokenizer& tokenizer_;
  bool render_special_;
  utf8_stream stream_;
  std::string scratch_;
};

}  // namespace bastion::kernels::tokenizer
