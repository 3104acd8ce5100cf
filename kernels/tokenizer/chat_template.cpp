#include "kernels/tokenizer/chat_template.hpp"

#include "kernels/tokenizer/utf8.hpp"

namespace bastion::kernels::tokenizer {
namespace {

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// The value of a Jinja string literal body (the escapes Python/Jinja string literals use).
std::string unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    const char e = s[++i];
    switch (e) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      default:
        out += e;
        break;  // \\, \', \"
    }
  }
  return out;
}

// Finds a literal "<|im_start|>system\n...<|im_end|>" inside a quoted string of the template:
// the default system prompt. A system header followed by a closing quote is the template
// writing the caller's own system message, not a default, and is skipped.
std::optional<std::string> find_default_system(std::string_view t) {
  constexpr std::string_view header = "<|im_start|>system";
  for (auto at = t.find(header); at != std::string_view::npos; at = t.find(header, at + 1)) {
    if (at == 0 || (t[at - 1] != '\'' && t[at - 1] != '"')) continue;
    const char quote = t[at - 1];
    std::size_t body = at + header.size();
    if (t.substr(body, 1) == "\n") {
      body += 1;
    } else if (t.substr(body, 2) == "\\n") {
      body += 2;
    } else {
      continue;
    }
    if (body < t.size() && t[body] == quote) continue;
    const auto end = t.find("<|im_end|>", body);
    const auto closing = t.find(quote, body);
    if (end == std::string_view::npos || closing < end) continue;
    return unescape(t.substr(body, end - body));
  }
  return std::nullopt;
}

// Python's str.isspace set, which Jinja's trim filter (str.strip) removes.
bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

std::string_view trim(std::string_view s) {
  // Leading: decode forward. Trailing: step back over whole characters.
  while (!s.empty()) {
    const auto seq = utf8::classify(s);
    if (seq.kind != utf8::sequence_kind::complete || !is_python_space(seq.code_point)) break;
    s.remove_prefix(seq.length);
  }
  while (!s.empty()) {
    std::size_t start = s.size() - 1;
    while (start > 0 && s.size() - start < 4 &&
           (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80)
      --start;
    const auto seq = utf8::classify(s.substr(start));
    if (seq.kind != utf8::sequence_kind::complete || start + seq.length != s.size() ||
        !is_python_space(seq.code_point)) {
      break;
    }
    s.remove_suffix(seq.length);
  }
  return s;
}

class prompt_writer {
 public:
  explicit prompt_writer(chat_prompt& p) : p_(p) {}
  void from_template(std::string_view s) {
    if (s.empty()) return;
    const std::size_t begin = p_.text.size();
    p_.text += s;
    if (!p_.template_ranges.empty() && p_.template_ranges.back().second == begin) {
      p_.template_ranges.back().second = p_.text.size();
    } else {
      p_.template_ranges.emplace_back(begin, p_.text.size());
    }
  }
  void from_message(std::string_view s) { p_.text += s; }

 private:
  chat_prompt& p_;
};

}  // namespace

chat_template chat_template::chatml() { return chat_template{}; }

status chat_template::from_template(std::string_view t, std::string_view bos_text,
                                    chat_template& out) {
  chat_template result;
  if (contains(t, "<|start_header_id|>") && contains(t, "<|end_header_id|>")) {
    if (contains(t, "Cutting Knowledge Date") || contains(t, "tools")) {
      return {status_code::unsupported,
              "chat template: Llama 3.1+ templates (tools, knowledge-date system text) are not "
              "supported; only the Llama 3 header format is"};
    }
    result.style_ = chat_style::llama3;
    if (contains(t, "bos_token")) {
      if (bos_text.empty()) {
        return {status_code::invalid_argument,
                "chat template writes bos_token but the model has no BOS token"};
      }
      result.bos_text_ = std::string{bos_text};
    }
    out = std::move(result);
    return status::ok();
  }
  if (!contains(t, "<|im_start|>")) {
    return {status_code::unsupported,
            "chat template not recognised: neither ChatML (<|im_start|>) nor Llama 3 headers"};
  }
  result.style_ = chat_style::chatml;
  result.default_system_ = find_default_system(t);
  if (result.default_system_) {
    const bool in_loop = contains(t, "loop.first and messages[0]['role'] != 'system'") ||
                         contains(t, "loop.first and messages[0].role != 'system'");
    const bool before_loop = contains(t, "if messages[0]['role'] == 'system'") ||
                             contains(t, "if messages[0].role == 'system'");
    if (in_loop == before_loop) {
      return {status_code::unsupported,
              "chat template has a default system prompt under a condition not recognised"};
    }
    result.default_system_even_without_messages_ = before_loop;
  } else {
    // Recognised exactly only when the template is the plain ChatML loop (its newlines may be
    // written raw or escaped inside the string literals).
    std::string escaped;
    for (char c : t) escaped += c == '\n' ? std::string{"\\n"} : std::string(1, c);
    result.exact_ = contains(escaped,
                             "'<|im_start|>' + message['role'] + '\\n' + message['content'] "
                             "+ '<|im_end|>' + '\\n'");
  }
  out = std::move(result);
  return status::ok();
}

chat_prompt chat_template::render(const std::vector<chat_message>& messages,
                                  bool add_generation_prompt) const {
  chat_prompt prompt;
  prompt_writer w{prompt};
  if (style_ == chat_style::llama3) {
    w.from_template(bos_text_);
    for (const auto& m : messages) {
      w.from_template("<|start_header_id|>");
      w.from_message(m.role);
      w.from_template("<|end_header_id|>\n\n");
      w.from_message(trim(m.content));
      w.from_template("<|eot_id|>");
    }
    if (add_generation_prompt) w.from_template("<|start_header_id|>assistant<|end_header_id|>\n\n");
    return prompt;
  }
  const bool starts_with_system = !messages.empty() && messages.front().role == "system";
  if (default_system_ && !starts_with_system &&
      (!messages.empty() || default_system_even_without_messages_)) {
    w.from_template("<|im_start|>system\n");
    w.from_template(*default_system_);
    w.from_template("<|im_end|>\n");
  }
  for (const auto& m : messages) {
    w.from_template("<|im_start|>");
    w.from_message(m.role);
    w.from_template("\n");
    w.from_message(m.content);
    w.from_template("<|im_end|>\n");
  }
  if (add_generation_prompt) w.from_template("<|im_start|>assistant\n");
  return prompt;
}

}  // namespace bastion::kernels::tokenizer
