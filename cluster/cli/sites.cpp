#include "cluster/cli/sites.hpp"

#include <chrono>

namespace bastion::cli {

using json = nlohmann::json;

std::vector<site_address> sites_of(const config::node_config& cfg) {
  std::vector<site_address> out{
      {cfg.node.site, cfg.http.listen.host + ":" + std::to_string(cfg.http.listen.port)}};
  for (const auto& p : cfg.cluster.peers) out.push_back({p.site, p.http_address});
  return out;
}

std::string answer_text(const http_answer& a) {
  if (a.status == 0) return a.error;
  auto j = json::parse(a.body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    const auto e = j.find("error");
    if (e != j.end() && e->is_object()) {
      const auto m = e->find("message");
      if (m != e->end() && m->is_string())
        return "HTTP " + std::to_string(a.status) + ": " + m->get<std::string>();
    }
    const auto r = j.find("result");
    if (r != j.end() && r->is_string()) return r->get<std::string>();
  }
  return "HTTP " + std::to_string(a.status) + ": " + a.body;
}

std::vector<site_status> ask_all(const std::vector<site_address>& sites, const std::string& key) {
  std::vector<site_status> out;
  for (const auto& s : sites) {
    auto a = http_call(s.http, "GET", "/admin/v1/status", key, "", std::chrono::seconds{3});
    site_status st{s, std::nullopt, {}};
    if (a.status == 200) {
      auto j = json::parse(a.body, nullptr, false);
      if (!j.is_discarded() && j.is_object())
        st.status = std::move(j);
      else
        st.error = "unreadable status";
    } else {
      st.error = answer_text(a);
    }
    out.push_back(std::move(st));
  }
  return out;
}

const site_status* ready_primary(const std::vector<site_status>& all) {
  for (const auto& s : all) {
    if (!s.status) continue;
    const auto ready = s.status->find("ready");
    if (ready != s.status->end() && ready->is_boolean() && ready->get<bool>()) return &s;
  }
  return nullptr;
}

}  // namespace bastion::cli
