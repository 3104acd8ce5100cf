#pragma once
// UTF-8 helpers for the tokenizer: encoding one code point, and classifying the sequence at a
// position as complete, incomplete (the text ends inside it) or invalid, following the
// Unicode "maximal subpart" rule so each ill-formed run is reported once and never swallows
// the valid bytes after it.

#include <cstddef>
#include <string>
#include <string_view>

namespace bastion::kernels::tokenizer::utf8 {

/// Appends the UTF-8 form of `cp`. REQUIRES: cp <= 0x10FFFF and not a surrogate.
void append(std::string& out, char32_t cp);

/// The replacement character U+FFFD, used where a byte stream must become valid text.
inline constexpr std::string_view replacement = "\xEF\xBF\xBD";

enum class sequence_kind { complete, incomplete, invalid };

struct sequence {
  sequence_kind kind = sequence_kind::invalid;
  // complete: the sequence's length; incomplete: the bytes present (all of s);
  // invalid: the length of the maximal ill-formed subpart (at least 1).
  std::size_t length = 0;
  char32_t code_point = 0;  // only for complete sequences
};

/// Classifies the sequence starting at s[0]. REQUIRES: !s.empty().
sequence classify(std::string_view s);

/// True when `s` is well-formed UTF-8 (no surrogates, no overlongs, nothing past U+10FFFF).
bool is_valid(std::string_view s);

}  // namespace bastion::kernels::tokenizer::utf8
