#include "kernels/tokenizer/utf8.hpp"

#include <cassert>
#include <cstdint>

namespace bastion::kernels::tokenizer::utf8 {

void append(std::string& out, char32_t cp) {
  assert(cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF));
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

sequence classify(std::string_view s) {
  assert(!s.empty());
  const auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(s[i]); };
  const std::uint8_t lead = byte(0);
  if (lead < 0x80) return {sequence_kind::complete, 1, lead};
  // Table 3-7 of the Unicode standard: the lead byte fixes the length and the range allowed
  // for the second byte (this is what excludes overlongs, surrogates and values > U+10FFFF).
  std::size_t length = 0;
  std::uint8_t second_lo = 0x80, second_hi = 0xBF;
  char32_t cp = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    cp = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    cp = lead & 0x0F;
    if (lead == 0xE0) second_lo = 0xA0;
    if (lead == 0xED) second_hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    cp = lead & 0x07;
    if (lead == 0xF0) second_lo = 0x90;
    if (lead == 0xF4) second_hi = 0x8F;
  } else {
    return {sequence_kind::invalid, 1, 0};  // a continuation byte or C0, C1, F5..FF
  }
  for (std::size_t i = 1; i < length; ++i) {
    if (i >= s.size()) return {sequence_kind::incomplete, s.size(), 0};
    const std::uint8_t b = byte(i);
    const std::uint8_t lo = i == 1 ? second_lo : 0x80;
    const std::uint8_t hi = i == 1 ? second_hi : 0xBF;
    if (b < lo || b > hi) return {sequence_kind::invalid, i, 0};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {sequence_kind::complete, length, cp};
}

bool is_valid(std::string_view s) {
  while (!s.empty()) {
    const sequence seq = classify(s);
    if (seq.kind != sequence_kind::complete) return false;
    s.remove_prefix(seq.length);
  }
  return true;
}

}  // namespace bastion::kernels::tokenizer::utf8
