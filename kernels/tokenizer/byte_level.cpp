#include "kernels/tokenizer/byte_level.hpp"

#include "kernels/tokenizer/utf8.hpp"

#include <array>

namespace bastion::kernels::tokenizer::byte_level {
namespace {

constexpr bool spells_itself(unsigned b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct tables {
  std::array<char32_t, 256> to_code_point{};
  std::array<std::string, 256> spelling;  // UTF-8 of to_code_point, for fast appends
  std::array<int, 0x100 + 68> to_byte{};  // indexed by code point; -1 where unused

  tables() {
    to_byte.fill(-1);
    unsigned next = 0x100;
    for (unsigned b = 0; b < 256; ++b) {
      const char32_t cp = spells_itself(b) ? static_cast<char32_t>(b) : next++;
      to_code_point[b] = cp;
      to_byte[cp] = static_cast<int>(b);
      utf8::append(spelling[b], cp);
    }
  }
};

const tables& the_tables() {
  static const tables t;  // immutable after construction; a constant table, not shared state
  return t;
}

}  // namespace

char32_t code_point_of(std::uint8_t b) { return the_tables().to_code_point[b]; }

int byte_of(char32_t cp) {
  const auto& t = the_tables();
  return cp < t.to_byte.size() ? t.to_byte[cp] : -1;
}

void append_spelling(std::string& out, std::string_view bytes) {
  const auto& t = the_tables();
  for (char c : bytes) out += t.spelling[static_cast<std::uint8_t>(c)];
}

bool decode_spelling(std::string_view spelling, std::string& out) {
  while (!spelling.empty()) {
    const utf8::sequence seq = utf8::classify(spelling);
    if (seq.kind != utf8::sequence_kind::complete) return false;
    const int b = byte_of(seq.code_point);
    if (b < 0) return false;
    out.push_back(static_cast<char>(b));
    spelling.remove_prefix(seq.length);
  }
  return true;
}

}  // namespace bastion::kernels::tokenizer::byte_level
