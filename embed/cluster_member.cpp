#include "embed/cluster_member.hpp"

#include <bastion/node.hpp>

#include "actors/coordination/journal_links.hpp"
#include "actors/replicator_rejoin.hpp"
#include "runtime/journal/file_ops.hpp"

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <iostream>
#include <set>

namespace bastion {

namespace {

std::string address(const config::listen_section& l) {
  return l.host + ":" + std::to_string(l.port);
}

}  // namespace

cluster_member::cluster_member(caf::actor_system& sys, const config::node_config& cfg,
                               serving::local_serving& serving, metrics::registry& registry,
                               const clock_source& clock)
    : sys_(sys), cfg_(cfg), serving_(serving), clock_(clock) {
  const auto& c = cfg.cluster;
  const std::string name = cfg.node.name;
  store_ = std::make_unique<journal::file_store>(
      c.journal_dir, journal::file_store_options{}, std::make_shared<journal::posix_file_ops>(),
      [name](const std::string& line) { std::cerr << name << " journal: " << line << std::endl; });

  actors::replicator_config rc;
  rc.id = c.replica_id;
  // The address in the Raft configuration is the one clients are redirected to.
  rc.address = address(cfg.http.listen);
  for (const auto& p : c.peers) rc.peers.push_back({p.replica_id, p.http_address, {}});
  rc.election_timeout_ms = c.election_timeout_ms;
  rc.heartbeat_timeout_ms = c.heartbeat_ms;
  rc.rng_seed = c.replica_id * 7919 + static_cast<std::uint64_t>(clock.wall().count());
  rc.faults = faults_;
  rc.metrics = &registry;
  // A site fenced by a forced promotion comes back through `bastion rejoin`, which leaves this
  // marker: no configuration of its own until the leader adds it (replicator_rejoin.hpp).
  rc.bootstrap = !actors::joins_existing_cluster(c.journal_dir);
  if (!rc.bootstrap)
    std::cerr << name << " journal: joining an existing cluster; waiting for the leader to add "
              << "this site (bastion add-site " << cfg.node.site << ")" << std::endl;
  rc.watch.lag_alert_ms = c.lag_alert_ms;
  rc.watch.silence_alert_ms = c.silence_alert_ms;
  rc.log = [name](const std::string& line) {
    std::cerr << name << " journal: " << line << std::endl;
  };
  replicator_ = actors::spawn_replicator(sys, rc, *store_, clock);

  auto published =
      coordination::publish_journal_link(sys, replicator_, c.raft_listen.host, c.raft_listen.port);
  if (!published) {
    caf::anon_send_exit(replicator_, caf::exit_reason::user_shutdown);
    caf::scoped_actor self{sys};
    self->wait_for(replicator_);
    throw start_error("cluster.raft_listen = '" + address(c.raft_listen) +
                      "' could not be published: " + sys.render(published.error()));
  }
  forwarder_ = published->forwarder;
  journal_port_ = published->port;
  for (const auto& p : c.peers)
    linkers_.push_back(coordination::spawn_peer_linker(
        sys, replicator_, p.replica_id, p.raft.host, p.raft.port, std::chrono::milliseconds{300}));

  port_ = std::make_unique<coordination::journaled_port>(serving.port(), view_, clock,
                                                         cfg.node.site, c.retain_output_text);
  coordination::coordinator_config cc;
  cc.site = cfg.node.site;
  cc.replica_id = c.replica_id;
  cc.retain_text = c.retain_output_text;
  cc.drain_timeout = std::chrono::milliseconds{c.drain_timeout_ms};
  for (const auto& p : c.peers) cc.peer_sites[p.replica_id] = p.site;
  coordinator_ =
      coordination::spawn_coordinator(sys, cc, replicator_, *port_, make_hooks(), clock, view_);
  port_->set_coordinator(coordinator_);
  admin_ = std::make_unique<cluster_admin>(sys, cfg, replicator_, coordinator_, view_, faults_);
  // Peers' progress for the preferred-site handover comes from the replicator's status; the
  // sites learn each other's rank from the config.
}

coordination::coordinator_hooks cluster_member::make_hooks() {
  coordination::coordinator_hooks h;
  // Configuration changes are not journaled yet (no record of that kind is written), so the
  // configuration in force is the node's own file: nothing to apply.
  h.apply_config = nullptr;
  h.check_models = [this](std::uint64_t, coordination::step_done done) {
    std::lock_guard<std::mutex> lock{checks_mutex_};
    // One check per epoch: drop the finished ones so the list stays as short as the checks
    // still running.
    checks_.erase(std::remove_if(checks_.begin(), checks_.end(),
                                 [](std::future<void>& f) {
                                   return f.wait_for(std::chrono::seconds{0}) ==
                                          std::future_status::ready;
                                 }),
                  checks_.end());
    checks_.push_back(std::async(std::launch::async, [this, done] {
      const auto snap = serving_.snapshot(std::chrono::seconds{5});
      std::set<std::string> served;
      for (const auto& w : snap.workers)
        if (w.healthy) served.insert(w.models.begin(), w.models.end());
      for (const auto& m : cfg_.models)
        if (!served.count(m.id)) {
          done(false, "model '" + m.id + "' has no healthy worker");
          return;
        }
      done(true, {});
    }));
  };
  h.run_canaries = [this](std::uint64_t epoch, coordination::step_done done) {
    if (cfg_.models.empty()) return done(true, {});
    gateway::inference_request canary;
    canary.request_id = "canary-" + cfg_.node.name + "-" + std::to_string(epoch);
    canary.model = cfg_.models.front().id;
    canary.input = std::string{"ping"};
    canary.params.max_tokens = 1;
    canary.priority = gateway::priority_class::production;
    canary.deadline_ms = 10000;
    canary.principal = "canary";
    // Straight to the local serving: a canary is not a client request and is not journaled.
    serving_.port().submit(std::move(canary), nullptr, [done](gateway::completion c) {
      if (auto* e = std::get_if<gateway::inference_error>(&c))
        done(false, "canary failed: " + e->message);
      else
        done(true, {});
    });
  };
  return h;
}

cluster_member::~cluster_member() {
  caf::scoped_actor self{sys_};
  // The coordinator first (it calls the port and reads the view), then the links, then the
  // replicator, which must stop before its store goes.
  caf::anon_send_exit(coordinator_, caf::exit_reason::user_shutdown);
  self->wait_for(coordinator_);
  for (auto& l : linkers_) caf::anon_send_exit(l, caf::exit_reason::user_shutdown);
  for (auto& l : linkers_) self->wait_for(l);
  if (journal_port_ != 0) (void)sys_.middleman().unpublish(forwarder_, journal_port_);
  caf::anon_send_exit(forwarder_, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(replicator_, caf::exit_reason::user_shutdown);
  self->wait_for(replicator_);
  std::lock_guard<std::mutex> lock{checks_mutex_};
  for (auto& f : checks_) f.wait();
}

}  // namespace bastion
