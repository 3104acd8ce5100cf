// Pre-tokenizers: each preset cuts text where its reference regexes do (expected pieces
// worked out from the patterns by hand, and Hugging Face's pieces on a random corpus), digits
// per family, Unicode whitespace, bad bytes.

#include "kernels/tokenizer/pre_tokenizer.hpp"

#include <catch2/catch.hpp>

#ifdef BASTION_TEST_HAVE_JSON
#include <nlohmann/json.hpp>

#include <fstream>
#endif

using namespace bastion::kernels;
using namespace bastion::kernels::tokenizer;
using pieces = std::vector<std::string>;

namespace {

pieces split(const std::string& pre, std::string_view text) {
  pre_tokenizer p;
  const auto st = pre_tokenizer::from_name(pre, p);
  INFO(st.message());
  REQUIRE(st);
  std::vector<std::string_view> views;
  REQUIRE(p.split(text, views));
  std::string joined;
  for (auto v : views) {
    CHECK_FALSE(v.empty());
    joined += v;
  }
  CHECK(joined == text);  // every byte exactly once, in order
  return pieces(views.begin(), views.end());
}

}  // namespace

TEST_CASE("pre_tokenizer gpt2: contractions, words, numbers, whitespace runs") {
  CHECK(split("gpt2", "Hello world's 123  test\n") ==
        pieces{"Hello", " world", "'s", " 123", " ", " test", "\n"});
  CHECK(split("gpt2", "a   b") == pieces{"a", "  ", " b"});
  CHECK(split("gpt2", "x!!  ") == pieces{"x", "!!", "  "});
  CHECK(split("gpt2", "").empty());
}

TEST_CASE("pre_tokenizer: digits are cut per family") {
  CHECK(split("smollm", "abc 12345") == pieces{"abc", " ", "1", "2", "3", "4", "5"});
  CHECK(split("qwen2", "abc 12345") == pieces{"abc", " ", "1", "2", "3", "4", "5"});
  CHECK(split("llama-bpe", "abc 12345") == pieces{"abc", " ", "123", "45"});
  CHECK(split("gpt2", "abc 12345") == pieces{"abc", " 12345"});
  // Unicode digits count as digits (\p{N}): Arabic-Indic.
  CHECK(split("smollm", "\xD9\xA1\xD9\xA2") == pieces{"\xD9\xA1", "\xD9\xA2"});
}

TEST_CASE("pre_tokenizer llama-bpe and qwen2: punctuation joins the next word") {
  CHECK(split("llama-bpe", "Hello,world") == pieces{"Hello", ",world"});
  CHECK(split("qwen2", "I'M here\n\n  x") == pieces{"I", "'M", " here", "\n\n", " ", " x"});
  CHECK(split("llama-bpe", "don'T") == pieces{"don", "'T"});
  CHECK(split("gpt2", "don'T") == pieces{"don", "'", "T"});  // GPT-2 is case-sensitive
}

TEST_CASE("pre_tokenizer: \\s means Unicode White_Space, including U+0085") {
  // PCRE2's own \s lacks NEL; Hugging Face and llama.cpp treat it as whitespace, so the two
  // NELs are separate whitespace pieces, not one run of "other" characters.
  CHECK(split("gpt2",
              "a\xC2\x85\xC2\x85"
              "b") == pieces{"a", "\xC2\x85", "\xC2\x85", "b"});
  CHECK(split("gpt2",
              "a\xE3\x80\x80"
              "b") == pieces{"a", "\xE3\x80\x80", "b"});  // U+3000
  std::string rewritten;
  REQUIRE(rewrite_whitespace_classes("[^\\s\\p{L}]\\s+(?!\\S)", rewritten));
  CHECK(rewritten.find("\\s") == std::string::npos);
  CHECK(rewritten.find("\\S") == std::string::npos);
  CHECK_FALSE(rewrite_whitespace_classes("[\\S]", rewritten));
}

TEST_CASE("pre_tokenizer: bytes that are not UTF-8 stay in the pieces") {
  const auto p = split("smollm",
                       "ab\xFF\xFE"
                       "cd 1\xC3");
  std::string joined;
  for (const auto& s : p) joined += s;
  CHECK(joined ==
        "ab\xFF\xFE"
        "cd 1\xC3");
  CHECK(p.front() == "ab");
}

TEST_CASE("pre_tokenizer: a long whitespace run is one piece, quickly") {
  const std::string spaces(1 << 20, ' ');
  CHECK(split("smollm", spaces) == pieces{spaces});
}

TEST_CASE("pre_tokenizer: unknown names and broken patterns are refused by name") {
  pre_tokenizer p;
  const auto unknown = pre_tokenizer::from_name("no-such-model", p);
  CHECK(unknown.code() == status_code::unsupported);
  CHECK(unknown.message().find("'no-such-model'") != std::string::npos);
  const auto broken = pre_tokenizer::from_patterns({"(unclosed"}, "custom", p);
  CHECK(broken.code() == status_code::invalid_argument);
  CHECK(broken.message().find("(unclosed") != std::string::npos);
  for (auto name : preset_names()) {
    INFO(name);
    CHECK(pre_tokenizer::from_name(name, p));
  }
}

#ifdef BASTION_TEST_HAVE_JSON
// Against Hugging Face tokenizers (Oniguruma regexes) on a fixed random corpus, made by
// tokenizer_pre_reference.py: every preset cuts every string into the same pieces.
TEST_CASE("pre_tokenizer: every preset cuts as Hugging Face does on a random corpus") {
  std::ifstream in(BASTION_PRE_REFERENCE);
  REQUIRE(in);
  const auto doc = nlohmann::json::parse(in);
  const auto& texts = doc.at("texts");
  REQUIRE(texts.size() >= 100);
  for (const auto& [name, rows] : doc.at("pieces").items()) {
    INFO(name);
    pre_tokenizer p;
    REQUIRE(pre_tokenizer::from_name(name, p));
    REQUIRE(rows.size() == texts.size());
    int matched = 0;
    for (std::size_t i = 0; i < texts.size(); ++i) {
      const std::string& text = texts[i].get_ref<const std::string&>();
      std::vector<std::string_view> views;
      REQUIRE(p.split(text, views));
      pieces expected;
      for (const auto& piece : rows[i]) expected.push_back(piece.get_ref<const std::string&>());
      if (pieces(views.begin(), views.end()) == expected) {
        ++matched;
      } else {
        UNSCOPED_INFO("differs on " << nlohmann::json(text).dump());
      }
    }
    CHECK(matched == static_cast<int>(texts.size()));
  }
}
#endif
