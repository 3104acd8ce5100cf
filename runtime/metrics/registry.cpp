#include "runtime/metrics/registry.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
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

// A bucket bound as short as it reads back exactly: 0.1, not 0.10000000000000001.
std::string format_bound(double v) {
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

// `{a="1"}` plus le="x": `{a="1",le="x"}`; no labels: `{le="x"}`.
std::string with_le(const std::string& rendered, const std::string& le) {
  if (rendered.empty()) return "{le=\"" + le + "\"}";
  return rendered.substr(0, rendered.size() - 1) + ",le=\"" + le + "\"}";
}

}  // namespace

histogram::histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {}

void histogram::observe(double v) noexcept {
  if (std::isnan(v)) return;
  std::size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  double s = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(s, s + v, std::memory_order_relaxed)) {
  }
}

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

histogram& registry::get_histogram(const std::string& name, const std::string& help,
                                   const std::vector<double>& bounds, const labels& l) {
  if (bounds.empty()) throw std::invalid_argument("histogram '" + name + "' has no bucket bounds");
  for (std::size_t i = 0; i < bounds.size(); ++i)
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
      throw std::invalid_argument("histogram '" + name +
                                  "' bounds must be finite and strictly ascending");
  for (const auto& [key, value] : l)
    if (key == "le") throw std::invalid_argument("histogram '" + name + "' may not label le");
  std::lock_guard<std::mutex> guard{mutex_};
  auto& fam = family_for(name, help, kind::histogram);
  if (fam.bounds.empty())
    fam.bounds = bounds;
  else if (fam.bounds != bounds)
    throw std::invalid_argument("histogram '" + name + "' already has other bucket bounds");
  auto& slot = fam.histograms[render_labels(l)];
  if (!slot) slot = std::make_unique<histogram>(bounds);
  return *slot;
}

std::string registry::render_prometheus() const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::string out;
  for (const auto& [name, fam] : families_) {
    out += "# HELP " + name + ' ' + escape(fam.help, false) + '\n';
    out += "# TYPE " + name +
           (fam.type == kind::counter ? " counter\n"
            : fam.type == kind::gauge ? " gauge\n"
                                      : " histogram\n");
    for (const auto& [lbl, c] : fam.counters)
      out += name + lbl + ' ' + std::to_string(c->value()) + '\n';
    for (const auto& [lbl, g] : fam.gauges)
      out += name + lbl + ' ' + format_value(g->value()) + '\n';
    for (const auto& [lbl, h] : fam.histograms) {
      // Cumulative, and _count from the same reads as the +Inf bucket, so a scrape racing
      // with observations is still a consistent histogram.
      std::uint64_t total = 0;
      for (std::size_t i = 0; i <= h->bounds().size(); ++i) {
        total += h->in_bucket(i);
        const std::string le = i < h->bounds().size() ? format_bound(h->bounds()[i]) : "+Inf";
        out += name + "_bucket" + with_le(lbl, le) + ' ' + std::to_string(total) + '\n';
      }
      out += name + "_sum" + lbl + ' ' + format_value(h->sum()) + '\n';
      out += name + "_count" + lbl + ' ' + std::to_string(total) + '\n';
    }
  }
  return out;
}

}  // namespace bastion::metrics
