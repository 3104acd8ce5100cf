#include "cluster/cli/health.hpp"

#include "cluster/cli/health_view.hpp"

#include <chrono>

namespace bastion::cli {

namespace {

constexpr std::chrono::seconds ask_timeout{3};

site_health ask(const site_address& where) {
  const auto metrics = http_call(where.http, "GET", "/metrics", "", "", ask_timeout);
  if (metrics.status != 200) {
    site_health down;
    down.site = where.site;
    down.address = where.http;
    down.error = metrics.status == 0 ? metrics.error : "/metrics: " + answer_text(metrics);
    return down;
  }
  const auto alive = http_call(where.http, "GET", "/healthz", "", "", ask_timeout);
  const auto ready = http_call(where.http, "GET", "/readyz", "", "", ask_timeout);
  return health_from(where.site, where.http, alive.status == 200, ready.status == 200,
                     metrics.body);
}

}  // namespace

int health(const std::vector<site_address>& sites, bool as_json, std::ostream& out) {
  std::vector<site_health> all;
  for (const auto& s : sites) all.push_back(ask(s));
  bool well = true;
  for (const auto& s : all) well = well && all_well(s);
  if (as_json) {
    for (const auto& s : all) out << health_json(s).dump() << "\n";
  } else {
    out << render_health(all);
  }
  return well ? 0 : 1;
}

}  // namespace bastion::cli
