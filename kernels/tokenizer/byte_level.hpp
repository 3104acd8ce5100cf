#pragma once
// GPT-2's byte-level alphabet: byte-level BPE vocabularies spell every byte as one printable
// code point, so a token's text never contains raw spaces or control bytes. Bytes 0x21..0x7E,
// 0xA1..0xAC and 0xAE..0xFF stand for themselves; the other 68 bytes, in increasing order,
// take the code points U+0100.. (so ' ' is U+0120 'Ġ' and '\n' is U+010A 'Ċ').

#include <cstdint>
#include <string>
#include <string_view>

namespace bastion::kernels::tokenizer::byte_level {

/// The code point that spells byte `b` in a vocabulary.
char32_t code_point_of(std::uint8_t b);

/// The byte a code point spells, or -1 when it is not part of the alphabet.
int byte_of(char32_t cp);

/// Appends the vocabulary spelling of `bytes` (any bytes, valid UTF-8 or not).
void append_spelling(std::string& out, std::string_view bytes);

/// Turns a vocabulary spelling back into bytes. Returns false (leaving `out` with a partial
/// result) when `spelling` is not valid UTF-8 or holds a code point outside the alphabet.
bool decode_spelling(std::string_view spelling, std::string& out);

}  // namespace bastion::kernels::tokenizer::byte_level
