// bastion: the operator's CLI for a three-site cluster (DESIGN.md §5 operations).
//
//   bastion status     --config SITE.toml [--json]          every site's role, term, indexes, lag
//   bastion health     --config SITE.toml | --node HOST:PORT ... [--json]
//                                                           workers, GPUs (memory, temperature,
//                                                           power), alerts; exit 1 if any is not well
//   bastion switchover --config SITE.toml --to SITE         drain the primary, hand over, wait
//   bastion fault      --config SITE.toml --link A,B (--cut | --delay-ms N | --drop R | --heal)
//                      [--oneway]                           the inter-site fault switch
//   bastion promote    --config SITE.toml --fenced A,B [--yes]
//                                                           forced promotion (node stopped)
//   bastion rejoin     --config SITE.toml [--yes]           a fenced site back (node stopped)
//   bastion add-site   --config SITE.toml --site SITE       the primary makes it a voter again
//   bastion journal    --dir JOURNAL_DIR | --config SITE.toml
//                                                           a stopped replica's journal, JSONL
//
// Any site's config names all three (its [cluster.peers]); the admin key comes from --key or
// BASTION_ADMIN_KEY and must be configured with `admin = true` on every site.

#include "cluster/cli/admin_client.hpp"
#include "cluster/cli/health.hpp"
#include "cluster/cli/journal_dump.hpp"
#include "cluster/cli/promote.hpp"
#include "cluster/cli/rejoin.hpp"
#include "cluster/cli/sites.hpp"
#include "runtime/config/node_config.hpp"

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

namespace po = boost::program_options;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

using bastion::cli::answer_text;
using bastion::cli::ask_all;
using bastion::cli::site_address;
using bastion::cli::sites_of;

/// A site's config; `cluster_required` false for commands that also serve a single site.
std::optional<bastion::config::node_config> load(const std::string& path,
                                                 bool cluster_required = true) {
  auto loaded = bastion::config::load_node_config(path);
  if (!loaded.config) {
    std::cerr << "bastion: config '" << path << "' refused:\n";
    for (const auto& e : loaded.errors) std::cerr << "  " << e << "\n";
    return std::nullopt;
  }
  if (cluster_required && !loaded.config->cluster.enabled) {
    std::cerr << "bastion: config '" << path << "' has no [cluster] section\n";
    return std::nullopt;
  }
  return loaded.config;
}

std::string u64(const json& j, const char* k) {
  return j.contains(k) ? std::to_string(j[k].get<std::uint64_t>()) : "-";
}

int cmd_status(const bastion::config::node_config& cfg, const std::string& key, bool as_json) {
  auto all = ask_all(sites_of(cfg), key);
  std::uint64_t leader_commit = 0;
  for (const auto& s : all)
    if (s.status && (*s.status)["journal"]["role"] == "leader")
      leader_commit = (*s.status)["journal"]["commit_index"].get<std::uint64_t>();
  if (as_json) {
    for (const auto& s : all) {
      json line = s.status ? *s.status : json{{"site", s.where.site}, {"down", s.error}};
      std::cout << line.dump() << "\n";
    }
    return 0;
  }
  std::cout << std::left << std::setw(10) << "SITE" << std::setw(10) << "ROLE" << std::setw(18)
            << "PHASE" << std::setw(6) << "TERM" << std::setw(6) << "EPOCH" << std::setw(9)
            << "COMMIT" << std::setw(9) << "APPLIED" << std::setw(9) << "LAST" << std::setw(7)
            << "LAG" << std::setw(10) << "LEADER" << std::setw(10) << "PREFERS"
            << "FAULTS\n";
  int up = 0;
  for (const auto& s : all) {
    std::cout << std::setw(10) << s.where.site;
    if (!s.status) {
      std::cout << "down (" << s.error << ")\n";
      continue;
    }
    ++up;
    const auto& j = *s.status;
    const auto& r = j["journal"];
    const auto applied = r["last_applied"].get<std::uint64_t>();
    std::string faults;
    for (const auto& f : j["faults"]) {
      if (!faults.empty()) faults += "; ";
      faults += f["peer"].get<std::string>() + ":";
      if (f["cut_outgoing"].get<bool>()) faults += " cut-out";
      if (f["cut_incoming"].get<bool>()) faults += " cut-in";
      if (f["delay_ms"].get<unsigned>() != 0)
        faults += " delay " + std::to_string(f["delay_ms"].get<unsigned>()) + "ms";
      if (f["drop_ratio"].get<double>() != 0)
        faults += " drop " + std::to_string(f["drop_ratio"].get<double>());
    }
    const std::string preferred = j["preferred_site"].get<std::string>();
    const std::string leader = r["leader_site"].get<std::string>();
    std::cout << std::setw(10) << r["role"].get<std::string>() << std::setw(18)
              << j["phase"].get<std::string>() << std::setw(6) << u64(r, "term") << std::setw(6)
              << u64(j, "epoch") << std::setw(9) << u64(r, "commit_index") << std::setw(9)
              << applied << std::setw(9) << u64(r, "last_index") << std::setw(7)
              << (leader_commit == 0
                      ? std::string{"?"}
                      : std::to_string(leader_commit > applied ? leader_commit - applied : 0))
              << std::setw(10) << (leader.empty() ? "?" : leader) << std::setw(10)
              << (preferred.empty() ? "-" : preferred) << (faults.empty() ? "-" : faults) << "\n";
  }
  // Only the leader judges its peers (actors/peer_watch.hpp): its alerts are the cluster's.
  for (const auto& s : all) {
    if (!s.status) continue;
    const auto& r = (*s.status)["journal"];
    if (r.find("alerts") == r.end() || !r["alerts"].is_array()) continue;
    for (const auto& a : r["alerts"])
      if (a.is_string())
        std::cout << "ALERT on " << s.where.site << ": " << a.get<std::string>() << "\n";
  }
  return up == 0 ? 1 : 0;
}

int cmd_switchover(const bastion::config::node_config& cfg, const std::string& key,
                   const std::string& to, int wait_s) {
  const auto sites = sites_of(cfg);
  const auto all = ask_all(sites, key);
  const auto* found = bastion::cli::ready_primary(all);
  if (found == nullptr) {
    std::cerr << "bastion switchover: no site is the ready primary; nothing to switch over\n";
    return 1;
  }
  const auto* primary = &found->where;
  const site_address* target = nullptr;
  for (const auto& s : sites)
    if (s.site == to) target = &s;
  if (target == nullptr) {  // before asking anyone
    std::cerr << "bastion switchover: '" << to << "' is not a site of this cluster\n";
    return 1;
  }
  const auto start = std::chrono::steady_clock::now();
  auto a = bastion::cli::http_call(primary->http, "POST", "/admin/v1/switchover", key,
                                   json{{"to", to}}.dump(), 20s);
  if (a.status != 200) {
    std::cerr << "bastion switchover: " << primary->site << " refused: " << answer_text(a) << "\n";
    return 1;
  }
  std::cout << primary->site << ": " << answer_text(a) << "\n";
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds{wait_s}) {
    auto t = bastion::cli::http_call(target->http, "GET", "/admin/v1/status", key, "", 2s);
    if (t.status == 200) {
      auto j = json::parse(t.body, nullptr, false);
      if (!j.is_discarded() && j["ready"].get<bool>()) {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - start)
                            .count();
        std::cout << to << " is the ready primary, epoch " << j["epoch"] << ", after " << ms
                  << " ms\n";
        return 0;
      }
    }
    std::this_thread::sleep_for(200ms);
  }
  std::cerr << "bastion switchover: " << to << " did not become the ready primary within " << wait_s
            << " s (it may still be catching up; see bastion status)\n";
  return 1;
}

int cmd_fault(const bastion::config::node_config& cfg, const std::string& key,
              const std::string& link, const po::variables_map& vm) {
  const auto comma = link.find(',');
  if (comma == std::string::npos) {
    std::cerr << "bastion fault: --link wants two sites, as prod,dr-local\n";
    return 2;
  }
  const std::string a = link.substr(0, comma), b = link.substr(comma + 1);
  const auto sites = sites_of(cfg);
  auto address = [&](const std::string& site) -> std::string {
    for (const auto& s : sites)
      if (s.site == site) return s.http;
    return {};
  };
  if (address(a).empty() || address(b).empty() || a == b) {
    std::cerr << "bastion fault: --link " << link << ": two different sites of this cluster\n";
    return 2;
  }
  const bool oneway = vm.count("oneway") != 0;
  const bool heal = vm.count("heal") != 0;
  json fault = {{"cut_outgoing", vm.count("cut") != 0},
                {"drop_ratio", vm["drop"].as<double>()},
                {"delay_ms", vm["delay-ms"].as<unsigned>()}};
  // Each end holds the fault for its own outgoing frames: both ends for the link, only the
  // first for --oneway (a -> b).
  std::vector<std::pair<std::string, std::string>> ends{{a, b}};
  if (!oneway) ends.push_back({b, a});
  int rc = 0;
  for (const auto& [from, peer] : ends) {
    json body = fault;
    body["peer"] = peer;
    auto r = bastion::cli::http_call(address(from), heal ? "DELETE" : "POST", "/admin/v1/faults",
                                     key, heal ? json{{"peer", peer}}.dump() : body.dump(), 5s);
    if (r.status != 200) {
      std::cerr << "bastion fault: " << from << ": " << answer_text(r) << "\n";
      rc = 1;
    } else {
      std::cout << from << " -> " << peer << ": " << (heal ? "healed" : body.dump()) << "\n";
    }
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string{argv[1]} == "--help" || std::string{argv[1]} == "-h") {
    std::cout << "usage: bastion status|health|switchover|fault|promote|rejoin|add-site|journal "
                 "[options]\n"
                 "  bastion <command> --help lists its options\n";
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  po::options_description desc("bastion " + command + " options");
  desc.add_options()("help,h", "this text")("config", po::value<std::string>(),
                                            "a site's node config (names every site)")(
      "key", po::value<std::string>(), "admin API key (default: $BASTION_ADMIN_KEY)")(
      "json", "status, health: one JSON object per site")(
      "node", po::value<std::vector<std::string>>(),
      "health: a node's HTTP address, host:port (repeatable; instead of --config)")("to", po::value<std::string>(),
                                                  "switchover: the site that should lead")(
      "wait-s", po::value<int>()->default_value(60), "switchover, add-site: how long to wait")(
      "link", po::value<std::string>(), "fault: two sites, as prod,dr-local")(
      "cut", "fault: drop every frame on the link")("oneway",
                                                    "fault: only the first site's frames")(
      "delay-ms", po::value<unsigned>()->default_value(0), "fault: hold each frame this long")(
      "drop", po::value<double>()->default_value(0.0), "fault: lose this share of frames")(
      "heal", "fault: clear the link's faults")("fenced", po::value<std::string>(),
                                                "promote: the lost sites, fenced, as a,b")(
      "yes", "promote, rejoin: do not ask for confirmation")(
      "site", po::value<std::string>(), "add-site: the site to make a voter again")(
      "dir", po::value<std::string>(), "journal: the journal directory");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc - 1, argv + 1, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "bastion " << command << ": " << e.what() << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  std::string key;
  if (vm.count("key"))
    key = vm["key"].as<std::string>();
  else if (const char* k = std::getenv("BASTION_ADMIN_KEY"))
    key = k;

  if (command == "journal") {
    std::string dir;
    if (vm.count("dir")) {
      dir = vm["dir"].as<std::string>();
    } else if (vm.count("config")) {
      auto cfg = load(vm["config"].as<std::string>());
      if (!cfg) return 2;
      dir = cfg->cluster.journal_dir;
    } else {
      std::cerr << "bastion journal: give --dir or --config\n";
      return 2;
    }
    return bastion::cli::dump_journal(dir, std::cout, std::cerr);
  }
  if (command == "health" && vm.count("node")) {
    std::vector<bastion::cli::site_address> nodes;
    // Through a checked pointer: GCC 12 sees a possible null in as<>'s any_cast.
    if (const auto* given = boost::any_cast<std::vector<std::string>>(&vm["node"].value()))
      for (const auto& n : *given) nodes.push_back({n, n});
    return bastion::cli::health(nodes, vm.count("json") != 0, std::cout);
  }
  if (!vm.count("config")) {
    std::cerr << "bastion " << command << ": --config is required"
              << (command == "health" ? " (or --node HOST:PORT)" : "") << "\n";
    return 2;
  }
  auto cfg = load(vm["config"].as<std::string>(), command != "health");
  if (!cfg) return 2;
  if (command == "health")  // no admin key: /healthz, /readyz and /metrics are open
    return bastion::cli::health(bastion::cli::sites_of(*cfg), vm.count("json") != 0, std::cout);
  if (command == "promote") {
    if (!vm.count("fenced")) {
      std::cerr << "bastion promote: --fenced names the lost sites you have fenced\n";
      return 2;
    }
    return bastion::cli::promote(*cfg, vm["fenced"].as<std::string>(), vm.count("yes") != 0,
                                 std::cin, std::cout, std::cerr);
  }
  if (key.empty()) {
    std::cerr << "bastion " << command << ": no admin key (--key or BASTION_ADMIN_KEY)\n";
    return 2;
  }
  if (command == "status") return cmd_status(*cfg, key, vm.count("json") != 0);
  if (command == "rejoin")
    return bastion::cli::rejoin(*cfg, key, vm.count("yes") != 0, std::cin, std::cout, std::cerr);
  if (command == "add-site") {
    if (!vm.count("site")) {
      std::cerr << "bastion add-site: --site names the site to add\n";
      return 2;
    }
    return bastion::cli::add_site(*cfg, key, vm["site"].as<std::string>(), vm["wait-s"].as<int>(),
                                  std::cout, std::cerr);
  }
  if (command == "switchover") {
    if (!vm.count("to")) {
      std::cerr << "bastion switchover: --to names the site that should lead\n";
      return 2;
    }
    return cmd_switchover(*cfg, key, vm["to"].as<std::string>(), vm["wait-s"].as<int>());
  }
  if (command == "fault") {
    if (!vm.count("link")) {
      std::cerr << "bastion fault: --link names the two sites\n";
      return 2;
    }
    return cmd_fault(*cfg, key, vm["link"].as<std::string>(), vm);
  }
  std::cerr << "bastion: unknown command '" << command << "'\n";
  return 2;
}
