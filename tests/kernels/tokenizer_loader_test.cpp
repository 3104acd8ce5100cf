// Loading tokenizers from GGUF metadata (files written by our GGUF writer, then spoiled on
// purpose) and from Hugging Face tokenizer.json text.

#include "kernels/model/gguf_writer.hpp"
#include "kernels/tokenizer/gguf_tokenizer.hpp"
#include "kernels/tokenizer/hf_tokenizer_json.hpp"
#include "tests/kernels/tokenizer_test_vocab.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <functional>

using namespace bastion::kernels;
using namespace bastion::kernels::tokenizer;
using bastion::test::id_of;
using bastion::test::make_spec;

namespace {

// A GGUF holding the metadata of make_spec({{"a","b"}}) plus two control tokens, with
// `spoil` applied to the writer last (a later set_* replaces the earlier value).
status load_gguf(const std::function<void(gguf::writer&)>& spoil,
                 std::unique_ptr<bpe_tokenizer>& out) {
  const auto spec = make_spec(
      {{"a", "b"}}, {{"<|im_start|>", token_kind::control}, {"<|im_end|>", token_kind::control}});
  gguf::writer w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "smollm");
  w.set_strings("tokenizer.ggml.tokens", spec.tokens);
  std::vector<std::int32_t> types;
  for (auto k : spec.kinds) types.push_back(static_cast<std::int32_t>(k));
  w.set_i32s("tokenizer.ggml.token_type", types);
  std::vector<std::string> merges;
  for (const auto& [l, r] : spec.merges) merges.push_back(l + " " + r);
  w.set_strings("tokenizer.ggml.merges", merges);
  w.set_u32("tokenizer.ggml.bos_token_id", 257);
  w.set_u32("tokenizer.ggml.eos_token_id", 258);
  w.set_bool("tokenizer.ggml.add_bos_token", false);
  w.set_string("tokenizer.chat_template", "{{ '<|im_start|>' }}");
  spoil(w);
  char path[] = "/tmp/bastion_tokenizer_test_XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  REQUIRE(w.write(path));
  std::unique_ptr<gguf::file> f;
  const auto opened = gguf::file::open(path, f);
  ::unlink(path);
  REQUIRE(opened);
  return load_gguf_tokenizer(*f, out);
}

std::string gguf_error(const std::function<void(gguf::writer&)>& spoil) {
  std::unique_ptr<bpe_tokenizer> t;
  const auto st = load_gguf(spoil, t);
  CHECK_FALSE(st);
  return st.message();
}

}  // namespace

TEST_CASE("gguf tokenizer: metadata loads with its pre-tokenizer, ids and template") {
  std::unique_ptr<bpe_tokenizer> t;
  const auto st = load_gguf([](gguf::writer&) {}, t);
  INFO(st.message());
  REQUIRE(st);
  CHECK(t->size() == 259);
  CHECK(t->pre().name() == "smollm");
  CHECK(t->bos() == 257);
  CHECK(t->eos() == 258);
  CHECK_FALSE(t->add_bos_by_default());
  CHECK(t->chat_template() == "{{ '<|im_start|>' }}");
  CHECK(t->kind(257) == token_kind::control);
  std::vector<token_id> out;
  REQUIRE(t->encode("ab<|im_end|>", false, true, out));
  CHECK(out == std::vector<token_id>{id_of(*t, "ab"), 258});
}

TEST_CASE("gguf tokenizer: the add_bos default follows the pre-tokenizer unless the file says") {
  std::unique_ptr<bpe_tokenizer> t;
  REQUIRE(load_gguf(
      [](gguf::writer& w) {
        w.set_string("tokenizer.ggml.pre", "llama-bpe");
        w.set_bool("tokenizer.ggml.add_bos_token", true);
      },
      t));
  CHECK(t->add_bos_by_default());
  CHECK(t->ignore_merges());
}

TEST_CASE("gguf tokenizer: hostile metadata is refused naming the key") {
  CHECK(gguf_error([](gguf::writer& w) {
          w.set_string("tokenizer.ggml.model", "llama");
        }).find("tokenizer.ggml.model 'llama'") != std::string::npos);
  CHECK(gguf_error([](gguf::writer& w) {
          w.set_string("tokenizer.ggml.pre", "weird");
        }).find("'weird'") != std::string::npos);
  CHECK(gguf_error([](gguf::writer& w) {
          w.set_i32s("tokenizer.ggml.token_type", {1, 2});
        }).find("2 entries for 259 tokens") != std::string::npos);
  CHECK(gguf_error([](gguf::writer& w) {
          std::vector<std::int32_t> types(259, 1);
          types[7] = 9;
          w.set_i32s("tokenizer.ggml.token_type", types);
        }).find("token_type[7] = 9") != std::string::npos);
  CHECK(gguf_error([](gguf::writer& w) {
          w.set_strings("tokenizer.ggml.merges", {"ab"});
        }).find("merges[0] 'ab'") != std::string::npos);
  CHECK(gguf_error([](gguf::writer& w) {
          w.set_strings("tokenizer.ggml.merges", {"a q"});
        }).find("'aq' is not a token") != std::string::npos);
  CHECK(gguf_error([](gguf::writer& w) {
          w.set_u32("tokenizer.ggml.eos_token_id", 5000);
        }).find("eos token id 5000") != std::string::npos);
  CHECK(gguf_error([](gguf::writer& w) { w.set_strings("tokenizer.ggml.tokens", {}); }).size() > 0);
  CHECK(gguf_error([](gguf::writer& w) {
          w.set_string("tokenizer.ggml.tokens", "x");
        }).find("tokenizer.ggml.tokens") != std::string::npos);
}

TEST_CASE("tokenizer.json: BPE with added tokens, merge forms and pre-tokenizer sequence") {
  if (!tokenizer_json_supported()) {
    WARN("tokenizer.json loader not built (no nlohmann_json); skipping");
    return;
  }
  // Bytes as the vocabulary (ids 0..255), "ab" at 256, added tokens at 257 and 258.
  std::string vocab;
  for (unsigned b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    std::string text = bastion::test::spelled(std::string_view{&c, 1});
    if (text == "\"" || text == "\\") text = "\\" + text;
    vocab += "\"" + text + "\": " + std::to_string(b) + ",";
  }
  vocab += "\"ab\": 256";
  const auto document = [&](const std::string& merges, const std::string& extra_added,
                            const std::string& pre) {
    return R"({"version":"1.0","normalizer":null,
      "added_tokens":[{"id":257,"content":"<|im_end|>","special":true,"lstrip":false,
                       "rstrip":false,"normalized":false,"single_word":false},
                      {"id":258,"content":"<tool>","special":false})" +
           extra_added + R"(],
      "pre_tokenizer":)" +
           pre + R"(,
      "post_processor":{"type":"ByteLevel"},
      "decoder":{"type":"ByteLevel"},
      "model":{"type":"BPE","unk_token":null,"vocab":{)" +
           vocab + R"(},"merges":)" + merges + "}}";
  };
  const std::string sequence =
      R"({"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},
         {"type":"ByteLevel","add_prefix_space":false,"use_regex":true}]})";
  for (const std::string merges : {R"(["a b"])", R"([["a","b"]])"}) {
    tokenizer_spec spec;
    const auto st = spec_from_tokenizer_json(document(merges, "", sequence), spec);
    INFO(st.message());
    REQUIRE(st);
    std::unique_ptr<bpe_tokenizer> t;
    REQUIRE(bpe_tokenizer::create(std::move(spec), t));
    CHECK(t->size() == 259);
    CHECK(t->kind(257) == token_kind::control);
    CHECK(t->kind(258) == token_kind::user_defined);
    std::vector<token_id> out;
    REQUIRE(t->encode("ab12<|im_end|><tool>", false, true, out));
    CHECK(out == std::vector<token_id>{256, '1', '2', 257, 258});
  }

  const auto refused = [&](const std::string& json, const std::string& why) {
    tokenizer_spec spec;
    const auto st = spec_from_tokenizer_json(json, spec);
    INFO(st.message());
    CHECK_FALSE(st);
    CHECK(st.message().find(why) != std::string::npos);
  };
  refused("{not json", "not valid JSON");
  refused(R"({"model":{"type":"Unigram"}})", "model type 'Unigram'");
  refused(document(R"(["a b"])", R"(,{"id":300,"content":"<x>","special":true})", sequence),
          "no token has id 259");
  refused(document(R"(["a b"])", R"(,{"id":5,"content":"<x>","special":true})", sequence),
          "already the id of");
  refused(document(R"([7])", "", sequence), "merge 0 is neither");
  refused(document(R"(["a b"])", "",
                   R"({"type":"Split","pattern":{"Regex":"x"},"behavior":"Removed"})"),
          "behavior other than Isolated");
  refused(document(R"(["a b"])", "", R"({"type":"Metaspace"})"), "'Metaspace'");
  refused(document(R"(["a b"])", "", R"({"type":"ByteLevel","add_prefix_space":true})"),
          "add_prefix_space");
}
