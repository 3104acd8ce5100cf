#include "embed/cluster_admin.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include <nlohmann/json.hpp>

#include <chrono>

namespace bastion {

namespace {

using json = nlohmann::json;
using gateway::admin_reply;

constexpr std::chrono::seconds ask_timeout{5};
// Under the gateway's admin_timeout_ms (15 s), so the caller gets this endpoint's answer.
constexpr std::chrono::seconds add_member_timeout{12};

admin_reply error_reply(unsigned status, const std::string& message) {
  return {status, json{{"error", {{"message", message}}}}.dump()};
}

/// The body as a JSON object; an empty body is an empty object.
std::optional<json> parse_object(const std::string& body, std::string& why) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    why = "the body must be a JSON object";
    return std::nullopt;
  }
  return j;
}

json fault_json(const std::string& site, std::uint64_t id, const actors::link_fault& f) {
  return {{"peer", site},
          {"replica_id", id},
          {"cut_outgoing", f.cut_outgoing},
          {"cut_incoming", f.cut_incoming},
          {"drop_ratio", f.drop_ratio},
          {"delay_ms", f.delay_ms}};
}

}  // namespace

cluster_admin::cluster_admin(caf::actor_system& sys, const config::node_config& cfg,
                             actors::replicator_actor replicator, caf::actor coordinator,
                             const coordination::coordinator_view& view,
                             std::shared_ptr<actors::link_faults> faults)
    : sys_(sys),
      cfg_(cfg),
      replicator_(std::move(replicator)),
      coordinator_(std::move(coordinator)),
      view_(view),
      faults_(std::move(faults)) {}

std::string cluster_admin::site_of(std::uint64_t replica_id) const {
  if (replica_id == cfg_.cluster.replica_id) return cfg_.node.site;
  for (const auto& p : cfg_.cluster.peers)
    if (p.replica_id == replica_id) return p.site;
  return {};
}

std::uint64_t cluster_admin::replica_of(const std::string& site) const {
  for (const auto& p : cfg_.cluster.peers)
    if (p.site == site) return p.replica_id;
  return 0;
}

void cluster_admin::handle(const std::string& method, const std::string& path,
                           const std::string& body, const std::string& principal,
                           std::function<void(admin_reply)> done) {
  if (path == "status") {
    if (method != "GET") return done(error_reply(400, "status takes GET"));
    return status(std::move(done));
  }
  if (path == "switchover") {
    if (method != "POST") return done(error_reply(400, "switchover takes POST"));
    return switchover(body, principal, std::move(done));
  }
  if (path == "faults") return done(faults(method, body));
  if (path == "members") {
    if (method != "POST") return done(error_reply(400, "members takes POST {\"add\": \"<site>\"}"));
    return add_member(body, std::move(done));
  }
  done(error_reply(404, "no admin endpoint '" + path + "' (status, switchover, faults, members)"));
}

std::vector<std::string> cluster_admin::name_sites(std::vector<std::string> alerts) const {
  // "journal_peer_lagging peer 2: ..." -> "journal_peer_lagging peer 2 (dr-local): ...": the
  // replicator knows ids, operators know sites.
  for (auto& a : alerts) {
    const auto at = a.find(" peer ");
    const auto colon = a.find(':', at == std::string::npos ? 0 : at);
    if (at == std::string::npos || colon == std::string::npos) continue;
    const auto id_text = a.substr(at + 6, colon - at - 6);
    if (id_text.empty() || id_text.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto site = site_of(std::stoull(id_text));
    if (!site.empty()) a.insert(colon, " (" + site + ")");
  }
  return alerts;
}

nlohmann::json cluster_admin::faults_in_force() const {
  json all = json::array();
  for (const auto& [id, f] : faults_->all()) all.push_back(fault_json(site_of(id), id, f));
  return all;
}

void cluster_admin::status(std::function<void(admin_reply)> done) {
  auto view = view_.get();
  json out = {{"node", cfg_.node.name},
              {"site", cfg_.node.site},
              {"replica_id", cfg_.cluster.replica_id},
              {"phase", view.phase},
              {"ready", view.ready},
              {"epoch", view.epoch},
              {"term", view.term},
              {"leader_address", view.leader_address},
              {"preferred_site", view.preferred_site},
              {"last_failure", view.last_failure},
              {"in_flight", view.in_flight}};
  out["faults"] = faults_in_force();
  // Asked from a short-lived actor so the gateway's loop never blocks on the replicator. The
  // one it asks goes in as the actor's argument: CAF 0.17 binds a null reference for a
  // function actor spawned without arguments (UBSan reports it), so none is spawned so.
  sys_.spawn(
      [this, out = std::move(out), done](caf::event_based_actor* self,
                                         actors::replicator_actor replicator) mutable {
        self->request(replicator, ask_timeout, actors::status_atom::value)
            .then(
                [this, out, done](const actors::replicator_status& s) mutable {
                  out["journal"] = journal_json(s);
                  done({200, out.dump()});
                },
                [done](const caf::error& e) {
                  done(error_reply(503, "the journal replica did not answer: " + to_string(e)));
                });
      },
      replicator_);
}

nlohmann::json cluster_admin::journal_json(const actors::replicator_status& s) const {
  json peers = json::array();
  for (std::size_t i = 0; i < s.peer_ids.size() && i < s.peer_match_index.size(); ++i) {
    const auto match = s.peer_match_index[i];
    json peer = {{"replica_id", s.peer_ids[i]},
                 {"site", site_of(s.peer_ids[i])},
                 {"match_index", match},
                 {"lag", s.last_index > match ? s.last_index - match : 0}};
    if (i < s.peer_lag_ms.size()) peer["lag_ms"] = s.peer_lag_ms[i];
    if (i < s.peer_silence_ms.size()) peer["silence_ms"] = s.peer_silence_ms[i];
    peers.push_back(std::move(peer));
  }
  return {{"role", actors::to_string(s.role)},
          {"term", s.term},
          {"leader_id", s.leader_id},
          {"leader_site", site_of(s.leader_id)},
          {"commit_index", s.commit_index},
          {"last_applied", s.last_applied},
          {"last_index", s.last_index},
          {"snapshot_index", s.snapshot_index},
          {"frames_received", s.frames_received},
          {"frames_dropped", s.frames_dropped},
          {"frames_dropped_fault", s.frames_dropped_fault},
          {"frames_fault_outgoing_dropped", s.frames_fault_outgoing_dropped},
          {"frames_fault_delayed", s.frames_fault_delayed},
          {"storage_errors", s.storage_errors},
          {"last_error", s.last_error},
          {"peers", std::move(peers)},
          {"alerts", name_sites(s.alerts)}};
}

void cluster_admin::switchover(const std::string& body, const std::string& principal,
                               std::function<void(admin_reply)> done) {
  std::string why;
  auto j = parse_object(body, why);
  if (!j) return done(error_reply(400, why));
  if (!j->contains("to") || !(*j)["to"].is_string())
    return done(error_reply(400, "switchover needs {\"to\": \"<site>\"}"));
  const std::string to = (*j)["to"].get<std::string>();
  if (to != cfg_.node.site && replica_of(to) == 0)
    return done(error_reply(400, "'" + to + "' is not a site of this cluster"));
  sys_.spawn(
      [this, to, principal, done](caf::event_based_actor* self, caf::actor coordinator) {
        self->request(coordinator, ask_timeout, coordination::switchover_atom::value, to, principal)
            .then(
                [done](const std::string& said) {
                  done({200, json{{"result", said}}.dump()});
                },
                [this, done](const caf::error& e) { done(error_reply(409, sys_.render(e))); });
      },
      coordinator_);
}

void cluster_admin::add_member(const std::string& body, std::function<void(admin_reply)> done) {
  std::string why;
  auto j = parse_object(body, why);
  if (!j) return done(error_reply(400, why));
  if (!j->contains("add") || !(*j)["add"].is_string())
    return done(error_reply(400, "members needs {\"add\": \"<site>\"}"));
  const std::string site = (*j)["add"].get<std::string>();
  const auto id = replica_of(site);
  if (id == 0) return done(error_reply(400, "'" + site + "' is not another site of this cluster"));
  // libraft catches the site up before it counts it as a voter; a long catch-up outlives this
  // call (202), and `bastion add-site` then watches the status until the site votes.
  sys_.spawn(
      [this, id, site, done](caf::event_based_actor* self, actors::replicator_actor replicator) {
        self->request(replicator, add_member_timeout, actors::add_voter_atom::value, id)
            .then(
                [site, done](std::uint64_t voters) {
                  done({200, json{{"result",
                                   site + " is a voter; " + std::to_string(voters) + " voters"},
                                  {"voters", voters}}
                                 .dump()});
                },
                [this, site, done](const caf::error& e) {
                  if (e == caf::sec::request_timeout)
                    return done({202, json{{"result", site + " is still catching up; watch "
                                                             "`bastion status`"}}
                                          .dump()});
                  done(error_reply(409, sys_.render(e)));
                });
      },
      replicator_);
}

admin_reply cluster_admin::faults(const std::string& method, const std::string& body) {
  auto list = [this] { return admin_reply{200, json{{"faults", faults_in_force()}}.dump()}; };
  if (method == "GET") return list();
  std::string why;
  auto j = parse_object(body, why);
  if (!j) return error_reply(400, why);
  std::uint64_t peer = 0;
  if (j->contains("peer")) {
    const auto& p = (*j)["peer"];
    if (!p.is_string()) return error_reply(400, "peer must be a site name");
    peer = replica_of(p.get<std::string>());
    if (peer == 0)
      return error_reply(400, "'" + p.get<std::string>() + "' is not another site of this cluster");
  }
  if (method == "DELETE") {
    if (peer == 0)
      faults_->clear_all();
    else
      faults_->clear(peer);
    return list();
  }
  if (method != "POST") return error_reply(400, "faults takes GET, POST or DELETE");
  if (peer == 0) return error_reply(400, "POST faults needs {\"peer\": \"<site>\", ...}");
  actors::link_fault f;
  // Typed field by field (each wrong type named), never by exceptions.
  const std::pair<const char*, bool*> cuts[] = {{"cut_outgoing", &f.cut_outgoing},
                                                {"cut_incoming", &f.cut_incoming}};
  for (const auto& [name, field] : cuts) {
    const auto it = j->find(name);
    if (it == j->end()) continue;
    if (!it->is_boolean()) return error_reply(400, std::string{name} + " must be true or false");
    *field = it->get<bool>();
  }
  if (const auto it = j->find("drop_ratio"); it != j->end()) {
    if (!it->is_number()) return error_reply(400, "drop_ratio must be a number in [0, 1]");
    f.drop_ratio = it->get<double>();
  }
  if (const auto it = j->find("delay_ms"); it != j->end()) {
    if (!it->is_number_unsigned())
      return error_reply(400, "delay_ms must be a whole number of milliseconds");
    f.delay_ms = static_cast<unsigned>(std::min<std::uint64_t>(it->get<std::uint64_t>(), 1U << 30));
  }
  if (auto err = faults_->set(peer, f)) return error_reply(400, to_string(err));
  return list();
}

}  // namespace bastion
