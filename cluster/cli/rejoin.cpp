#include "cluster/cli/rejoin.hpp"

#include "actors/replicator_errors.hpp"
#include "actors/replicator_rejoin.hpp"
#include "cluster/cli/admin_client.hpp"
#include "cluster/cli/sites.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <istream>
#include <optional>
#include <ostream>
#include <thread>

namespace bastion::cli {

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

/// The ready primary now, with its status.
std::optional<site_status> find_primary(const config::node_config& cfg, const std::string& key) {
  const auto all = ask_all(sites_of(cfg), key);
  if (const auto* p = ready_primary(all)) return *p;
  return std::nullopt;
}

/// The primary's view of `site` as a voting peer: its lag in entries, or nullopt when the
/// primary does not count it as a voter.
std::optional<std::uint64_t> voter_lag(const json& status, const std::string& site) {
  const auto journal = status.find("journal");
  if (journal == status.end() || !journal->is_object()) return std::nullopt;
  const auto peers = journal->find("peers");
  if (peers == journal->end() || !peers->is_array()) return std::nullopt;
  for (const auto& p : *peers) {
    const auto s = p.find("site");
    const auto lag = p.find("lag");
    if (s != p.end() && s->is_string() && s->get<std::string>() == site && lag != p.end() &&
        lag->is_number_unsigned())
      return lag->get<std::uint64_t>();
  }
  return std::nullopt;
}

std::string now_suffix() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

}  // namespace

int rejoin(const config::node_config& cfg, const std::string& key, bool assume_yes,
           std::istream& in, std::ostream& out, std::ostream& err) {
  const std::string& site = cfg.node.site;
  const std::string self_http = sites_of(cfg).front().http;
  if (http_call(self_http, "GET", "/healthz", "", "", 2s).status != 0) {
    err << "bastion rejoin: site '" << site << "' answers at " << self_http
        << ": stop its node first (its journal must not change under it)\n";
    return 1;
  }
  auto primary = find_primary(cfg, key);
  if (!primary) {
    err << "bastion rejoin: no site is the ready primary, so there is no cluster to rejoin. "
           "Rejoin is for a site fenced by a forced promotion; a site of an intact cluster is "
           "simply started.\n";
    return 1;
  }
  if (voter_lag(*primary->status, site)) {
    err << "bastion rejoin: the primary " << primary->where.site << " still counts '" << site
        << "' as a voter: its journal is valid, start its node as it is\n";
    return 1;
  }
  const auto& dir = cfg.cluster.journal_dir;
  out << "Rejoin of site '" << site << "' to the cluster led by " << primary->where.site << ".\n"
      << "Its journal " << dir << " is moved aside (kept: it holds what this site committed "
      << "that the promoted cluster may lack) and replaced by an empty one that waits to be "
      << "added.\n";
  if (!assume_yes) {
    const std::string expected = "rejoin " + site;
    out << "Type '" << expected << "' to continue: " << std::flush;
    std::string line;
    std::getline(in, line);
    if (line != expected) {
      err << "bastion rejoin: not confirmed; nothing was changed\n";
      return 1;
    }
  }
  auto prepared = actors::prepare_rejoin(dir, now_suffix());
  if (!prepared) {
    err << "bastion rejoin: "
        << actors::render_replicator_error(prepared.error().code(), prepared.error().category(),
                                           prepared.error().context())
        << "\n";
    return 1;
  }
  if (!prepared->moved_to.empty())
    out << "Old journal moved to " << prepared->moved_to << " (read it with `bastion journal --dir "
        << prepared->moved_to << "`).\n";
  out << "Prepared " << dir << " (" << actors::join_marker_file << ").\n"
      << "Next: start the node of site '" << site << "', then run `bastion add-site --site " << site
      << "`.\n";
  return 0;
}

int add_site(const config::node_config& cfg, const std::string& key, const std::string& site,
             int wait_s, std::ostream& out, std::ostream& err) {
  const auto sites = sites_of(cfg);
  if (std::none_of(sites.begin(), sites.end(),
                   [&](const site_address& s) { return s.site == site; })) {
    err << "bastion add-site: '" << site << "' is not a site of this cluster\n";
    return 2;
  }
  auto primary = find_primary(cfg, key);
  if (!primary) {
    err << "bastion add-site: no site is the ready primary\n";
    return 1;
  }
  if (primary->where.site == site) {
    err << "bastion add-site: '" << site << "' is the primary\n";
    return 1;
  }
  const auto start = std::chrono::steady_clock::now();
  auto a = http_call(primary->where.http, "POST", "/admin/v1/members", key,
                     json{{"add", site}}.dump(), 20s);
  if (a.status != 200 && a.status != 202) {
    err << "bastion add-site: " << primary->where.site << " refused: " << answer_text(a) << "\n";
    return 1;
  }
  out << primary->where.site << ": " << answer_text(a) << "\n";
  // Done when the primary of the moment counts the site as a voter with nothing missing, or
  // the site leads itself (the preference rule may hand prod leadership as soon as it has
  // caught up, before this loop looks).
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds{wait_s}) {
    auto now = find_primary(cfg, key);
    const auto lag = now ? voter_lag(*now->status, site) : std::nullopt;
    if (now && (now->where.site == site || (lag && *lag == 0))) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - start)
                          .count();
      out << site << " is a caught-up voter after " << ms << " ms"
          << (now->where.site == site ? " and leads" : "") << "\n";
      return 0;
    }
    std::this_thread::sleep_for(200ms);
  }
  err << "bastion add-site: " << site << " is not a caught-up voter after " << wait_s
      << " s (see bastion status)\n";
  return 1;
}

}  // namespace bastion::cli
