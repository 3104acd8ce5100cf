#include "cluster/cli/prometheus_text.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>

namespace bastion::cli {

std::string metric_sample::label(std::string_view key) const {
  for (const auto& [k, v] : labels)
    if (k == key) return v;
  return {};
}

namespace {

bool name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool name_char(char c) { return name_start(c) || (c >= '0' && c <= '9'); }

void skip_blanks(std::string_view s, std::size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
}

std::string read_name(std::string_view s, std::size_t& i) {
  const std::size_t from = i;
  if (i < s.size() && name_start(s[i]))
    while (i < s.size() && name_char(s[i])) ++i;
  return std::string{s.substr(from, i - from)};
}

}  // namespace

std::optional<double> parse_sample_value(std::string_view t) {
  if (t == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (t == "+Inf" || t == "Inf") return std::numeric_limits<double>::infinity();
  if (t == "-Inf") return -std::numeric_limits<double>::infinity();
  if (t.empty() || t.size() > 64 || t.find_first_of("xX") != std::string_view::npos)
    return std::nullopt;  // hex floats: strtod reads them, Prometheus does not write them
  const std::string copy{t};
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(copy.c_str(), &end);
  // strtod also takes "nan", "inf" and hex floats, which the format does not write.
  if (end != copy.c_str() + copy.size() || std::isnan(v) || std::isinf(v)) return std::nullopt;
  return v;
}

namespace {

// Labels from just after '{' through the closing '}'; false with `why` when malformed.
bool read_labels(std::string_view s, std::size_t& i, metric_sample& out, std::string& why) {
  while (true) {
    skip_blanks(s, i);
    if (i < s.size() && s[i] == '}') {
      ++i;
      return true;
    }
    std::string key = read_name(s, i);
    if (key.empty()) return why = "a label name was expected", false;
    skip_blanks(s, i);
    if (i >= s.size() || s[i] != '=') return why = "'=' was expected after label " + key, false;
    ++i;
    skip_blanks(s, i);
    if (i >= s.size() || s[i] != '"') return why = "label " + key + "'s value is not quoted", false;
    ++i;
    std::string value;
    bool closed = false;
    while (i < s.size()) {
      const char c = s[i++];
      if (c == '"') {
        closed = true;
        break;
      }
      if (c != '\\') {
        value += c;
        continue;
      }
      if (i >= s.size()) break;
      const char e = s[i++];
      if (e == 'n')
        value += '\n';
      else if (e == '\\' || e == '"')
        value += e;
      else
        return why = std::string{"label "} + key + "'s value has an unknown escape \\" + e, false;
    }
    if (!closed) return why = "label " + key + "'s value is not closed", false;
    out.labels.emplace_back(std::move(key), std::move(value));
    skip_blanks(s, i);
    if (i < s.size() && s[i] == ',')
      ++i;
    else if (i >= s.size() || s[i] != '}')
      return why = "',' or '}' was expected after a label", false;
  }
}

std::optional<metric_sample> parse_line(std::string_view line, std::string& why) {
  std::size_t i = 0;
  skip_blanks(line, i);
  metric_sample out;
  out.name = read_name(line, i);
  if (out.name.empty()) return why = "a metric name was expected", std::nullopt;
  if (i < line.size() && line[i] == '{') {
    ++i;
    if (!read_labels(line, i, out, why)) return std::nullopt;
  }
  if (i >= line.size() || (line[i] != ' ' && line[i] != '\t'))
    return why = "a blank and a value were expected after " + out.name, std::nullopt;
  skip_blanks(line, i);
  const std::size_t from = i;
  while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
  const auto value = parse_sample_value(line.substr(from, i - from));
  if (!value)
    return why = "'" + std::string{line.substr(from, i - from)} + "' is not a value", std::nullopt;
  out.value = *value;
  skip_blanks(line, i);
  if (i < line.size()) {  // a timestamp: an integer of milliseconds, not used here
    const std::size_t ts = i;
    if (line[i] == '-') ++i;
    while (i < line.size() && line[i] >= '0' && line[i] <= '9') ++i;
    skip_blanks(line, i);
    if (i == ts || i < line.size())
      return why = "'" + std::string{line.substr(ts)} + "' after the value is not a timestamp",
             std::nullopt;
  }
  return out;
}

}  // namespace

parsed_metrics parse_prometheus_text(std::string_view text) {
  parsed_metrics out;
  std::size_t number = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::size_t i = 0;
    skip_blanks(line, i);
    if (i == line.size() || line[i] == '#') continue;
    std::string why;
    if (auto s = parse_line(line, why))
      out.samples.push_back(std::move(*s));
    else
      out.errors.push_back("line " + std::to_string(number) + ": " + why);
  }
  return out;
}

}  // namespace bastion::cli
