#pragma once
// The pre-tokenizer cuts text into pieces before BPE runs on each piece alone. It is a list
// of regular expressions applied in turn, each one cutting every piece made by the previous
// ones: what a pattern matches becomes a piece, and so does each run of text between matches
// (Hugging Face's Split with behaviour "Isolated"; llama.cpp's regex split works the same).
// Patterns are PCRE2 in UTF mode with Unicode properties (\p{L}, \p{N}, ...), JIT-compiled
// when the platform allows. `\s` and `\S` are rewritten to Unicode's White_Space set, which is
// what Hugging Face (Oniguruma) and llama.cpp mean by them; PCRE2's own \s lacks U+0085.
// Bytes that are not valid UTF-8 match nothing, so they end up in the pieces between matches
// and still reach BPE: no input byte is ever lost.

#include "kernels/status.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace bastion::kernels::tokenizer {

/// A named pre-tokenizer as models declare it in GGUF `tokenizer.ggml.pre`, with the
/// tokenizer defaults that go with it in the reference implementations.
struct pre_tokenizer_preset {
  std::string_view name;
  std::vector<std::string_view> patterns;
  bool ignore_merges = false;  // a piece that is itself a token skips BPE (Llama 3)
  bool add_bos = false;        // the default when the model does not say
};

/// The preset for `name` (aliases included), or a status naming the unknown name.
status find_preset(std::string_view name, const pre_tokenizer_preset*& out);

/// The canonical preset names, for messages and tests.
std::vector<std::string_view> preset_names();

class pre_tokenizer {
 public:
  pre_tokenizer();
  ~pre_tokenizer();
  pre_tokenizer(pre_tokenizer&&) noexcept;
  pre_tokenizer& operator=(pre_tokenizer&&) noexcept;

  /// Compiles a preset by name (see find_preset).
  static status from_name(std::string_view name, pre_tokenizer& out);
  /// Compiles `patterns`, applied in order; `name` is only reported. An empty list is
  /// allowed (the whole text is one piece). A pattern that does not compile gives a status
  /// quoting it and PCRE2's reason with the offset.
  static status from_patterns(const std::vector<std::string>& patterns, std::string name,
                              pre_tokenizer& out);

  /// Appends the pieces of `text` to `pieces` (views into `text`, in order, covering every
  /// byte exactly once, none empty). Fails only if the regex engine does (for example a
  /// resource limit), with a status saying which pattern.
  status split(std::string_view text, std::vector<std::string_view>& pieces) const;

  const std::string& name() const noexcept { return name_; }
  /// The patterns as given (before the \s rewrite).
  const std::vector<std::string>& patterns() const noexcept { return patterns_; }
  /// True when every pattern runs JIT-compiled.
  bool jit() const noexcept;

 private:
  struct compiled;
  std::string name_;
  std::vector<std::string> patterns_;
  std::vector<std::unique_ptr<compiled>> compiled_;
};

/// The Unicode version of the regex engine's character tables ("14.0.0" for PCRE2 10.42).
/// Characters assigned in later versions are unassigned (\p{Cn}) to it, so text holding them
/// may split differently from a reference with newer tables.
std::string regex_unicode_version();

/// GPT-2's pattern, as Hugging Face's ByteLevel pre-tokenizer (use_regex) applies it.
std::string_view gpt2_pattern();

/// Rewrites `\s` and `\S` in a regex to explicit White_Space classes (exposed for tests).
/// `\S` inside a character class cannot be expressed and gives a status.
status rewrite_whitespace_classes(std::string_view pattern, std::string& out);

}  // namespace bastion::kernels::tokenizer
