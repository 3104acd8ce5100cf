#include "runtime/metrics/registry.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace bastion::metrics {
namespace {

bool valid_name(const std::string& s, bool allow_colon) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (allow_colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string escape(const std::string& s, bool quote) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (quote && c == '"')
      out += "\\\"";
    else
      out += c;
  }
  return out;
}

std::string render_labels(const labels& l) {
  if (l.empty()) return {};
  std::string out = "{";
  for (std::size_t i = 0; i < l.size(); ++i) {
    if (!valid_name(l[i].first, false))
      throw std::invalid_argument("invalid metric label name '" + l[i].first + "'");
    if (i) out += ',';
    out += l[i].first + "=\"" + escape(l[i].second, true) + '"';
  }
  return out + '}';
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

registry::family& registry::family_for(const std::string& name, const std::string& help,
                                       kind type) {
  if (!valid_name(name, true)) throw std::invalid_argument("invalid metric name '" + name + "'");
  auto [it, inserted] = families_.try_emplace(name);
  if (inserted) {
    it->second.type = type;
    it->second.help = help;
  } else if (it->second.type != type) {
    throw std::invalid_argument("metric '" + name + "' already registered with another type");
  }
  return it->second;
}

counter& registry::get_counter(const std::string& name, const std::string& help, const labels& l) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto& fam = family_for(name, help, kind::counter);
  auto& slot = fam.counters[render_labels(l)];
  if (!slot) slot = std::make_unique<counter>();
  return *slot;
}

gauge& registry::get_gauge(const std::string& name, const std::string& help, const labels& l) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto& fam = family_for(name, help, kind::gauge);
  auto& slot = fam.gauges[render_labels(l)];
  if (!slot) slot = std::make_unique<gauge>();
  return *slot;
}

std::string registry::render_prometheus() const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::string out;
  for (const auto& [name, fam] : families_) {
    out += "# HELP " + name + ' ' + escape(fam.help, false) + '\n';
    out += "# TYPE " + name + (fam.type == kind::counter ? " counter\n" : " gauge\n");
    for (const auto& [lbl, c] : fam.counters)
      out += name + lbl + ' ' + std::to_string(c->value()) + '\n';
    for (const auto& [lbl, g] : fam.gauges)
      out += name + lbl + ' ' + format_value(g->value()) + '\n';
  }
  return out;
}

}  // namespace bastion::metrics
