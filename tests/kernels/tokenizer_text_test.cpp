// UTF-8 classification, the byte-level alphabet, and streaming text that never splits a
// character.

#include "kernels/tokenizer/byte_level.hpp"
#include "kernels/tokenizer/stream_detokenizer.hpp"
#include "kernels/tokenizer/utf8.hpp"
#include "tests/kernels/tokenizer_test_vocab.hpp"

#include <catch2/catch.hpp>

#include <random>

using namespace bastion::kernels;
using namespace bastion::kernels::tokenizer;

TEST_CASE("utf8: classify tells complete, incomplete and ill-formed sequences apart") {
  CHECK(utf8::classify("a").kind == utf8::sequence_kind::complete);
  const auto e_acute = utf8::classify("\xC3\xA9");
  CHECK(e_acute.kind == utf8::sequence_kind::complete);
  CHECK(e_acute.code_point == 0xE9);
  CHECK(utf8::classify("\xF0\x9F\x99\x82").code_point == 0x1F642);
  CHECK(utf8::classify("\xF0\x9F\x99").kind == utf8::sequence_kind::incomplete);
  // Overlong, surrogate, beyond U+10FFFF, lone continuation: ill-formed.
  CHECK(utf8::classify("\xC0\xAF").kind == utf8::sequence_kind::invalid);
  CHECK(utf8::classify("\xED\xA0\x80").kind == utf8::sequence_kind::invalid);
  CHECK(utf8::classify("\xF4\x90\x80\x80").kind == utf8::sequence_kind::invalid);
  CHECK(utf8::classify("\x80").kind == utf8::sequence_kind::invalid);
  // The maximal subpart: E2 82 followed by 'A' is one bad unit of 2 bytes; 'A' survives.
  const auto cut = utf8::classify(
      "\xE2\x82"
      "A");
  CHECK(cut.kind == utf8::sequence_kind::invalid);
  CHECK(cut.length == 2);
  CHECK(utf8::is_valid("héllo 🙂"));
  CHECK_FALSE(utf8::is_valid("h\xFFllo"));
}

TEST_CASE("byte_level: every byte has one printable spelling and decodes back") {
  CHECK(byte_level::code_point_of(' ') == 0x120);   // 'Ġ'
  CHECK(byte_level::code_point_of('\n') == 0x10A);  // 'Ċ'
  CHECK(byte_level::code_point_of('A') == 'A');
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string spelling;
  byte_level::append_spelling(spelling, all);
  CHECK(utf8::is_valid(spelling));
  CHECK(spelling.find(' ') == std::string::npos);
  std::string back;
  REQUIRE(byte_level::decode_spelling(spelling, back));
  CHECK(back == all);
  std::string ignored;
  CHECK_FALSE(byte_level::decode_spelling("\xE4\xBD\xA0", ignored));  // '你' is not in it
}

TEST_CASE("utf8_stream: holds a split character until it completes, at any cut") {
  const std::string text = "a é 你好 🙂👨‍👩‍👧 z";
  std::mt19937 rng(12345);
  for (int trial = 0; trial < 200; ++trial) {
    utf8_stream s;
    std::string out;
    std::size_t at = 0;
    while (at < text.size()) {
      const std::size_t n = std::min<std::size_t>(text.size() - at, 1 + rng() % 4);
      s.feed(std::string_view{text}.substr(at, n), out);
      at += n;
      CHECK(utf8::is_valid(out));  // never half a character, after every chunk
    }
    s.finish(out);
    REQUIRE(out == text);
  }
}

TEST_CASE("utf8_stream: ill-formed bytes become U+FFFD and do not eat valid ones") {
  utf8_stream s;
  std::string out;
  s.feed("a\xFF", out);
  CHECK(out == "a\xEF\xBF\xBD");
  out.clear();
  s.feed("\xE4\xBD", out);  // first two bytes of '你'
  CHECK(out.empty());
  CHECK(s.held_bytes() == 2);
  s.feed("A", out);  // breaks the sequence: one U+FFFD for the held bytes, then 'A'
  CHECK(out ==
        "\xEF\xBF\xBD"
        "A");
  out.clear();
  s.feed("\xF0\x9F", out);
  s.finish(out);  // the stream ends inside a character
  CHECK(out == "\xEF\xBF\xBD");
  CHECK(s.held_bytes() == 0);
}

TEST_CASE("stream_detokenizer: tokens that split a character emit it once complete") {
  using bastion::test::id_of;
  std::unique_ptr<bpe_tokenizer> t;
  REQUIRE(bpe_tokenizer::create(bastion::test::make_spec({}, {{"<|im_end|>", token_kind::control}}),
                                t));
  const std::string emoji = "\xF0\x9F\x99\x82";  // 🙂 as four single-byte tokens
  stream_detokenizer d{*t};
  std::string out;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(d.push(id_of(*t, emoji.substr(static_cast<std::size_t>(i), 1)), out));
    CHECK(out.empty());
  }
  REQUIRE(d.push(id_of(*t, emoji.substr(3, 1)), out));
  CHECK(out == emoji);
  // Control tokens are not text unless asked for.
  REQUIRE(d.push(*t->find("<|im_end|>"), out));
  CHECK(out == emoji);
  stream_detokenizer rendering{*t, true};
  std::string shown;
  REQUIRE(rendering.push(*t->find("<|im_end|>"), shown));
  CHECK(shown == "<|im_end|>");
  // A bad id is refused and changes nothing.
  CHECK_FALSE(d.push(-1, out));
  CHECK_FALSE(d.push(static_cast<token_id>(t->size()), out));
  CHECK(out == emoji);
}
