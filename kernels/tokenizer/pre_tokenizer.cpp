#include "kernels/tokenizer/pre_tokenizer.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cassert>

namespace bastion::kernels::tokenizer {
namespace {

// Unicode's White_Space property (PropList.txt): the set \s means in Oniguruma (Hugging Face)
// and in llama.cpp's unicode tables.
constexpr std::string_view white_space_set =
    "\\x{09}-\\x{0D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";

// GPT-2's pattern as Hugging Face's ByteLevel pre-tokenizer has it. llama.cpp drops the final
// `|\s+`; the result is the same because text no alternative matches becomes a piece anyway.
constexpr std::string_view gpt2_regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// Llama 3 and Qwen2 spell the contractions case-insensitively; written out as ASCII classes
// (as llama.cpp does) so Unicode case folding cannot widen them.
constexpr std::string_view llama3_pattern =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view qwen2_pattern =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

struct named_preset {
  std::vector<std::string_view> aliases;  // the first is the canonical name
  pre_tokenizer_preset preset;
};

// Names and patterns as llama.cpp's vocabulary loader maps `tokenizer.ggml.pre`, checked
// against the models' tokenizer.json pre_tokenizer sections.
const std::vector<named_preset>& presets() {
  static const std::vector<named_preset> all = {
      // SmolLM / StarCoder family: Digits(individual_digits) then GPT-2's ByteLevel regex.
      {{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"},
       {"smollm", {"\\p{N}", gpt2_regex}, false, false}},
      // Qwen2 / Qwen2.5 / DeepSeek-R1-Distill-Qwen: one digit per piece.
      {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"},
       {"qwen2", {qwen2_pattern}, false, false}},
      // Llama 3 / DeepSeek-R1-Distill-Llama: up to three digits per piece, whole-word tokens
      // skip the merges, and BOS is added by default.
      {{"llama-bpe", "llama3", "llama-v3", "falcon3"}, {"llama-bpe", {llama3_pattern}, true, true}},
      // GPT-2 itself; also the choice when a GGUF names no pre-tokenizer at all.
      {{"gpt2", "gpt-2", "mpt", "olmo", "jais"}, {"gpt2", {gpt2_regex}, false, false}},
      // llama.cpp's "default" (an explicit name in some GGUFs).
      {{"default"},
       {"default",
        {"[\\p{P}\\$\\+<=>\\^~\\|]+", gpt2_regex, "\\p{N}+", "[0-9][0-9][0-9]"},
        false,
        false}},
  };
  return all;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  const int n = pcre2_get_error_message(code, buffer, sizeof buffer);
  if (n < 0) return "PCRE2 error " + std::to_string(code);
  return std::string(reinterpret_cast<const char*>(buffer), static_cast<std::size_t>(n));
}

}  // namespace

status find_preset(std::string_view name, const pre_tokenizer_preset*& out) {
  for (const auto& p : presets()) {
    for (auto alias : p.aliases) {
      if (alias == name) {
        out = &p.preset;
        return status::ok();
      }
    }
  }
  std::string known;
  for (auto n : preset_names()) known += (known.empty() ? "" : ", ") + std::string{n};
  return {status_code::unsupported, "unknown pre-tokenizer '" + std::string{name} +
                                        "' (known: " + known + " and their aliases)"};
}

std::string_view gpt2_pattern() { return gpt2_regex; }

std::string regex_unicode_version() {
  char version[64] = {};
  if (pcre2_config(PCRE2_CONFIG_UNICODE_VERSION, version) < 0) return "unknown";
  return version;
}

std::vector<std::string_view> preset_names() {
  std::vector<std::string_view> names;
  for (const auto& p : presets()) names.push_back(p.aliases.front());
  return names;
}

status rewrite_whitespace_classes(std::string_view pattern, std::string& out) {
  out.clear();
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\') {
      if (i + 1 >= pattern.size()) {
        return {status_code::invalid_argument,
                "pre-tokenizer pattern '" + std::string{pattern} + "' ends with a lone '\\'"};
      }
      const char e = pattern[++i];
      if (e == 's') {
        if (in_class) {
          out += white_space_set;
        } else {
          out += '[';
          out += white_space_set;
          out += ']';
        }
      } else if (e == 'S') {
        if (in_class) {
          return {status_code::unsupported, "pre-tokenizer pattern '" + std::string{pattern} +
                                                "' uses \\S inside a character class"};
        }
        out += "[^";
        out += white_space_set;
        out += ']';
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      // A POSIX class such as [:alpha:] inside a class: copy it whole.
      const auto end = pattern.find(":]", i + 2);
      if (end != std::string_view::npos) {
        out.append(pattern.substr(i, end + 2 - i));
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return status::ok();
}

struct pre_tokenizer::compiled {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~compiled() {
    if (code) pcre2_code_free(code);
  }
};

pre_tokenizer::pre_tokenizer() = default;
pre_tokenizer::~pre_tokenizer() = default;
pre_tokenizer::pre_tokenizer(pre_tokenizer&&) noexcept = default;
pre_tokenizer& pre_tokenizer::operator=(pre_tokenizer&&) noexcept = default;

status pre_tokenizer::from_name(std::string_view name, pre_tokenizer& out) {
  const pre_tokenizer_preset* preset = nullptr;
  if (auto st = find_preset(name, preset); !st) return st;
  std::vector<std::string> patterns(preset->patterns.begin(), preset->patterns.end());
  return from_patterns(patterns, std::string{preset->name}, out);
}

status pre_tokenizer::from_patterns(const std::vector<std::string>& patterns, std::string name,
                                    pre_tokenizer& out) {
  pre_tokenizer result;
  result.name_ = std::move(name);
  result.patterns_ = patterns;
  for (const auto& pattern : patterns) {
    if (pattern.empty()) {
      return {status_code::invalid_argument,
              "pre-tokenizer '" + result.name_ + "' has an empty pattern"};
    }
    std::string rewritten;
    if (auto st = rewrite_whitespace_classes(pattern, rewritten); !st) return st;
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    auto c = std::make_unique<compiled>();
    c->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(),
                            PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &error_offset,
                            nullptr);
    if (!c->code) {
      return {status_code::invalid_argument,
              "pre-tokenizer '" + result.name_ + "': pattern '" + pattern +
                  "' does not compile: " + pcre2_message(error) + " (at offset " +
                  std::to_string(error_offset) + " of the rewritten pattern)"};
    }
    // JIT is an optimisation: where it is unavailable the interpreter gives the same pieces.
    c->jit = pcre2_jit_compile(c->code, PCRE2_JIT_COMPLETE) == 0;
    result.compiled_.push_back(std::move(c));
  }
  out = std::move(result);
  return status::ok();
}

bool pre_tokenizer::jit() const noexcept {
  for (const auto& c : compiled_)
    if (!c->jit) return false;
  return true;
}

status pre_tokenizer::split(std::string_view text, std::vector<std::string_view>& pieces) const {
  if (text.empty()) return status::ok();
  std::vector<std::string_view> current{text};
  std::vector<std::string_view> next;
  struct match_data_deleter {
    void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
  };
  for (std::size_t p = 0; p < compiled_.size(); ++p) {
    const compiled& c = *compiled_[p];
    std::unique_ptr<pcre2_match_data, match_data_deleter> md{
        pcre2_match_data_create_from_pattern(c.code, nullptr)};
    if (!md) return {status_code::out_of_memory, "pre-tokenizer: no memory for match data"};
    next.clear();
    for (std::string_view piece : current) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      std::size_t start = 0, gap_start = 0;
      while (start < piece.size()) {
        // NOTEMPTY: an empty match would cut nothing, so it is not a match for us.
        const int rc =
            pcre2_match(c.code, subject, piece.size(), start, PCRE2_NOTEMPTY, md.get(), nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          return {status_code::invalid_argument, "pre-tokenizer '" + name_ + "': pattern '" +
                                                     patterns_[p] +
                                                     "' failed: " + pcre2_message(rc)};
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
        const std::size_t m_begin = ov[0], m_end = ov[1];
        assert(m_end > m_begin && m_begin >= start);
        if (m_begin > gap_start) next.push_back(piece.substr(gap_start, m_begin - gap_start));
        next.push_back(piece.substr(m_begin, m_end - m_begin));
        start = gap_start = m_end;
      }
      if (gap_start < piece.size()) next.push_back(piece.substr(gap_start));
    }
    current.swap(next);
  }
  pieces.insert(pieces.end(), current.begin(), current.end());
  return status::ok();
}

}  // namespace bastion::kernels::tokenizer
