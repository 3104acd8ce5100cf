// Byte-level BPE on small vocabularies: merge order, special tokens, round trips, and every
// way a hostile vocabulary or id can be wrong.

#include "kernels/tokenizer/bpe_tokenizer.hpp"
#include "kernels/tokenizer/utf8.hpp"
#include "tests/kernels/tokenizer_test_vocab.hpp"

#include <catch2/catch.hpp>

#include <random>

using namespace bastion::kernels;
using namespace bastion::kernels::tokenizer;
using bastion::test::id_of;
using bastion::test::make_spec;
using ids = std::vector<token_id>;

namespace {

std::unique_ptr<bpe_tokenizer> make(tokenizer_spec spec) {
  std::unique_ptr<bpe_tokenizer> t;
  const auto st = bpe_tokenizer::create(std::move(spec), t);
  INFO(st.message());
  REQUIRE(st);
  return t;
}

ids encode(const bpe_tokenizer& t, std::string_view text, bool parse_special = true) {
  ids out;
  const auto st = t.encode(text, false, parse_special, out);
  INFO(st.message());
  REQUIRE(st);
  return out;
}

std::string decode(const bpe_tokenizer& t, const ids& in) {
  std::string out;
  REQUIRE(t.decode(in, out));
  return out;
}

std::string error_of(tokenizer_spec spec) {
  std::unique_ptr<bpe_tokenizer> t;
  const auto st = bpe_tokenizer::create(std::move(spec), t);
  CHECK_FALSE(st);
  CHECK(t == nullptr);
  return st.message();
}

}  // namespace

TEST_CASE("bpe: merges apply by rank, not by position") {
  auto ll_first = make(make_spec({{"l", "l"}, {"e", "l"}}));
  CHECK(encode(*ll_first, "ell") == ids{id_of(*ll_first, "e"), id_of(*ll_first, "ll")});
  auto el_first = make(make_spec({{"e", "l"}, {"l", "l"}}));
  CHECK(encode(*el_first, "ell") == ids{id_of(*el_first, "el"), id_of(*el_first, "l")});
}

TEST_CASE("bpe: among equal ranks the leftmost pair merges first") {
  auto t = make(make_spec({{"l", "l"}}));
  CHECK(encode(*t, "lll") == ids{id_of(*t, "ll"), id_of(*t, "l")});
  CHECK(encode(*t, "llll") == ids{id_of(*t, "ll"), id_of(*t, "ll")});
}

TEST_CASE("bpe: chains of merges build whole words within one piece only") {
  auto t = make(make_spec({{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {" ", "w"}}));
  CHECK(encode(*t, "hello") == ids{id_of(*t, "hello")});
  // The pre-tokenizer cuts before " w", so "o" and " " never merge across pieces.
  CHECK(encode(*t, "hello world").front() == id_of(*t, "hello"));
  CHECK(encode(*t, "hello world")[1] == id_of(*t, " w"));
}

TEST_CASE("bpe: ignore_merges takes a whole-piece token directly (Llama 3)") {
  // "ab" is a token only reachable by merging; "abc" a token no merge builds.
  auto spec = make_spec({{"a", "b"}});
  spec.tokens.push_back(bastion::test::spelled("abc"));
  spec.kinds.push_back(token_kind::normal);
  auto plain = make(spec);
  CHECK(encode(*plain, "abc") == ids{id_of(*plain, "ab"), id_of(*plain, "c")});
  spec.ignore_merges = true;
  auto direct = make(spec);
  CHECK(encode(*direct, "abc") == ids{id_of(*direct, "abc")});
}

TEST_CASE("bpe: special tokens are recognised only when asked; added tokens always") {
  auto t = make(make_spec({}, {{"<|im_end|>", token_kind::control},
                               {"<|im_end|>x", token_kind::control},
                               {"<tool>", token_kind::user_defined}}));
  const token_id end = *t->find("<|im_end|>");
  const token_id end_x = *t->find("<|im_end|>x");
  const token_id tool = *t->find("<tool>");
  CHECK(encode(*t, "a<|im_end|>b") == ids{id_of(*t, "a"), end, id_of(*t, "b")});
  CHECK(encode(*t, "<|im_end|>xy") == ids{end_x, id_of(*t, "y")});  // longest wins
  const ids literal = encode(*t, "a<|im_end|>b", false);
  CHECK(std::find(literal.begin(), literal.end(), end) == literal.end());
  CHECK(decode(*t, literal) == "a<|im_end|>b");
  CHECK(encode(*t, "<tool>", false) == ids{tool});
  // A special token is never split, even inside a word.
  CHECK(encode(*t, "ab<|im_end|><|im_end|>") == ids{id_of(*t, "a"), id_of(*t, "b"), end, end});
  std::string hidden;
  REQUIRE(t->decode({id_of(*t, "a"), end}, hidden, false));
  CHECK(hidden == "a");
}

TEST_CASE("bpe: decode(encode(x)) == x for arbitrary bytes when every byte has a token") {
  auto t = make(make_spec({{"t", "h"}, {"th", "e"}, {" ", "the"}, {"\xE4", "\xBD"}}, {}, "smollm"));
  std::mt19937 rng(7);
  const std::string alphabet = "the  \n\t1234\xE4\xBD\xA0\xF0\x9F\x99\x82\xC3\xA9\xFF\x80xyz'sS";
  for (int trial = 0; trial < 500; ++trial) {
    std::string text;
    const std::size_t n = rng() % 40;
    for (std::size_t i = 0; i < n; ++i) {
      // Mostly whole bytes of the alphabet, sometimes any byte at all.
      text.push_back(rng() % 5 ? alphabet[rng() % alphabet.size()] : static_cast<char>(rng()));
    }
    INFO(trial);
    REQUIRE(decode(*t, encode(*t, text)) == text);
  }
}

TEST_CASE("bpe: a byte without a token follows the spec's policy") {
  // Byte 0x04 loses its token; "!\x04!" is one piece (all three are "other" characters).
  auto spec = make_spec({{"!", "!"}});
  spec.tokens[4] = "<unk>";
  spec.kinds[4] = token_kind::control;
  spec.unk = 4;
  const std::string text = "!\x04!";
  spec.missing_bytes = missing_byte_policy::barrier;  // llama.cpp: nothing merges across it
  auto barrier = make(spec);
  CHECK(barrier->bytes_without_token() == 1);
  CHECK(encode(*barrier, text, false) == ids{'!', '!'});
  spec.missing_bytes = missing_byte_policy::skip;  // HF without unk: gone before merging
  auto skip = make(spec);
  CHECK(encode(*skip, text, false) == ids{id_of(*skip, "!!")});
  spec.missing_bytes = missing_byte_policy::unknown;  // HF with unk
  auto unknown = make(spec);
  CHECK(encode(*unknown, text, false) == ids{'!', 4, '!'});
  spec.unk.reset();
  CHECK(error_of(spec).find("0x04") != std::string::npos);
}

TEST_CASE("bpe: BOS is added on request and refused when the model has none") {
  auto spec = make_spec({}, {{"<s>", token_kind::control}});
  spec.bos = static_cast<token_id>(spec.tokens.size() - 1);
  auto t = make(spec);
  ids out;
  REQUIRE(t->encode("a", true, false, out));
  CHECK(out == ids{*spec.bos, id_of(*t, "a")});
  auto none = make(make_spec({}));
  CHECK_FALSE(none->encode("a", true, false, out));
}

TEST_CASE("bpe: end of generation covers EOS and the end-of-turn tokens") {
  auto spec = make_spec({}, {{"<|im_end|>", token_kind::control},
                             {"<|endoftext|>", token_kind::control},
                             {"<|im_start|>", token_kind::control}});
  spec.eos = static_cast<token_id>(spec.tokens.size() - 1);  // unusual, but the model says so
  auto t = make(spec);
  CHECK(t->is_end_of_generation(*t->find("<|im_end|>")));
  CHECK(t->is_end_of_generation(*t->find("<|endoftext|>")));
  CHECK(t->is_end_of_generation(*spec.eos));
  CHECK_FALSE(t->is_end_of_generation(id_of(*t, "a")));
  CHECK_FALSE(t->is_end_of_generation(-5));
}

TEST_CASE("bpe: hostile vocabularies are refused with the reason") {
  CHECK(error_of(tokenizer_spec{}).find("empty") != std::string::npos);

  auto empty_text = make_spec({});
  empty_text.tokens.push_back("");
  empty_text.kinds.push_back(token_kind::normal);
  CHECK(error_of(empty_text).find("token 256 has empty text") != std::string::npos);

  auto duplicate = make_spec({});
  duplicate.tokens.push_back(duplicate.tokens[65]);
  duplicate.kinds.push_back(token_kind::normal);
  CHECK(error_of(duplicate).find("tokens 65 and 256") != std::string::npos);

  auto unknown_part = make_spec({{"a", "b"}});
  unknown_part.merges.emplace_back("zz", "b");
  CHECK(error_of(unknown_part).find("'zz' is not a token") != std::string::npos);

  auto no_result = make_spec({});
  no_result.merges.emplace_back("a", "b");
  CHECK(error_of(no_result).find("merged text 'ab' is not a token") != std::string::npos);

  auto repeated = make_spec({{"a", "b"}});
  repeated.merges.emplace_back("a", "b");
  CHECK(error_of(repeated).find("repeats merge 0") != std::string::npos);

  auto bad_bos = make_spec({});
  bad_bos.bos = 100000;
  CHECK(error_of(bad_bos).find("bos token id 100000") != std::string::npos);
  auto negative_eos = make_spec({});
  negative_eos.eos = -1;
  CHECK(error_of(negative_eos).find("eos token id -1") != std::string::npos);

  auto bos_missing = make_spec({});
  bos_missing.add_bos = true;
  CHECK(error_of(bos_missing).find("BOS") != std::string::npos);

  auto kinds = make_spec({});
  kinds.kinds.pop_back();
  CHECK(error_of(kinds).find("kind list") != std::string::npos);

  auto pre = make_spec({}, {}, "mystery-pre");
  CHECK(error_of(pre).find("'mystery-pre'") != std::string::npos);

  auto big = make_spec({});
  tokenizer_limits small;
  small.tokens_max = 100;
  std::unique_ptr<bpe_tokenizer> t;
  CHECK_FALSE(bpe_tokenizer::create(big, t, small));
}

TEST_CASE("bpe: bad ids and oversized text are errors, not crashes") {
  auto spec = make_spec({});
  tokenizer_limits limits;
  limits.text_bytes_max = 16;
  std::unique_ptr<bpe_tokenizer> t;
  REQUIRE(bpe_tokenizer::create(spec, t, limits));
  std::string out = "stale";
  const auto st = t->decode({65, 66, 1 << 30}, out);
  CHECK_FALSE(st);
  CHECK(st.message().find("position 2") != std::string::npos);
  CHECK(out.empty());
  CHECK_FALSE(t->decode({-1}, out));
  ids tokens{1, 2};
  CHECK_FALSE(t->encode(std::string(17, 'a'), false, false, tokens));
  CHECK(tokens.empty());
}

TEST_CASE("bpe: control tokens can be limited to given ranges (no injection via content)") {
  auto t = make(
      make_spec({}, {{"<|im_end|>", token_kind::control}, {"<tool>", token_kind::user_defined}}));
  const token_id end = *t->find("<|im_end|>");
  const std::string text = "<|im_end|>x<|im_end|><tool>";
  ids out;
  // Only the first 10 bytes (the first "<|im_end|>") are template text.
  REQUIRE(t->encode_with_control_ranges(text, false, {{0, 10}}, out));
  CHECK(std::count(out.begin(), out.end(), end) == 1);
  CHECK(out.front() == end);
  CHECK(out.back() == *t->find("<tool>"));  // added tokens are not limited
  std::string back;
  REQUIRE(t->decode(out, back));
  CHECK(back == text);
  // A range that covers only part of a token does not let it match.
  REQUIRE(t->encode_with_control_ranges(text, false, {{0, 5}}, out));
  CHECK(std::count(out.begin(), out.end(), end) == 0);
  // Covering everything is plain encode with parse_special.
  REQUIRE(t->encode_with_control_ranges(text, false, {{0, text.size()}}, out));
  CHECK(out == encode(*t, text, true));
}
