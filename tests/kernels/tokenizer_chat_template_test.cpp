// Chat templates: ChatML with and without a default system prompt (both placements), the
// Llama 3 header format, and templates we refuse. Expected strings are what the templates'
// Jinja produces for these messages (checked with the jinja2 package).

#include "kernels/tokenizer/chat_template.hpp"

#include <catch2/catch.hpp>

using namespace bastion::kernels;
using namespace bastion::kernels::tokenizer;

namespace {

// The structure SmolLM2's and Qwen2's templates have: default system prompt inside the loop.
const std::string in_loop_template =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nBe brief.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% endif %}";

// Qwen2.5's placement: before the loop, so even an empty conversation gets it.
const std::string before_loop_template =
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + "
    "messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou "
    "are Q.<|im_end|>\\n' }}{%- endif %}{%- for message in messages %}...{%- endfor %}";

chat_template parse(const std::string& text, std::string_view bos = "") {
  chat_template t;
  const auto st = chat_template::from_template(text, bos, t);
  INFO(st.message());
  REQUIRE(st);
  return t;
}

}  // namespace

TEST_CASE("chat template: ChatML inserts the default system prompt before a user turn") {
  const auto t = parse(in_loop_template);
  CHECK(t.style() == chat_style::chatml);
  CHECK(t.default_system_prompt() == std::string{"Be brief."});
  CHECK(t.render({{"user", "Hi"}}, true).text ==
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n");
  // A conversation that brings its own system message keeps it and gets no default.
  CHECK(t.render({{"system", "S"}, {"user", "U"}, {"assistant", "A"}}, false).text ==
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
        "<|im_start|>assistant\nA<|im_end|>\n");
  // Inside the loop means nothing at all for an empty conversation.
  CHECK(t.render({}, true).text == "<|im_start|>assistant\n");
  CHECK(t.render({}, false).text.empty());
}

TEST_CASE("chat template: a default system prompt before the loop appears even with no turns") {
  const auto t = parse(before_loop_template);
  CHECK(t.default_system_prompt() == std::string{"You are Q."});
  CHECK(t.render({}, false).text == "<|im_start|>system\nYou are Q.<|im_end|>\n");
}

TEST_CASE("chat template: template text and message text are told apart") {
  const auto t = parse(in_loop_template);
  const auto p = t.render({{"user", "<|im_end|>"}}, false);
  // The user's "<|im_end|>" lies outside every template range.
  const auto user_at = p.text.find("user\n<|im_end|>") + 5;
  for (const auto& [b, e] : p.template_ranges) CHECK((user_at + 10 <= b || user_at >= e));
  std::string rebuilt_template;
  for (const auto& [b, e] : p.template_ranges) rebuilt_template += p.text.substr(b, e - b);
  CHECK(rebuilt_template == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>\n<|im_end|>\n");
}

TEST_CASE("chat template: plain ChatML and the Llama 3 header format") {
  const auto plain = parse(
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
      "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}");
  CHECK_FALSE(plain.default_system_prompt());
  CHECK(plain.recognised_exactly());
  CHECK(plain.render({{"user", "Hi"}}, true).text ==
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  const auto odd = parse("{{ '<|im_start|>' }}{{ something_else }}");
  CHECK_FALSE(odd.recognised_exactly());

  const auto llama = parse(
      "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
      "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ "
      "message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = "
      "bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt "
      "%}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
      "<|begin_of_text|>");
  CHECK(llama.style() == chat_style::llama3);
  CHECK(llama.render({{"user", "  Hi \n"}}, true).text ==
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST_CASE("chat template: unknown families are refused, not guessed") {
  chat_template t;
  const auto st = chat_template::from_template("{{ messages[0]['content'] }}", "", t);
  CHECK(st.code() == status_code::unsupported);
  CHECK_FALSE(chat_template::from_template(
      "<|start_header_id|><|end_header_id|>Cutting Knowledge Date: December 2023", "<s>", t));
  CHECK_FALSE(
      chat_template::from_template("<|start_header_id|><|end_header_id|>{{ bos_token }}", "", t));
}
