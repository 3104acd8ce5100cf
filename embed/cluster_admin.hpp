#pragma once
// The node's admin endpoints (gateway /admin/v1/...), for the `bastion` CLI. Private to embed/.
//
//   GET  status      this site: coordinator phase, epoch, leader, preference; its journal
//                    replica: role, term, commit/applied/last index, frame counters (the
//                    fault switch's among them), and (at the leader) each voting peer's
//                    match index, lag in entries and in ms, silence, and the alerts firing
//                    (actors/peer_watch.hpp); the link faults in force.
//   POST switchover  {"to": "dr-local"}: the ready primary journals a leadership preference
//                    and hands over once that site has caught up (answer after the commit).
//   GET  faults      the link faults in force.
//   POST faults      {"peer": "dr-remote", "cut_outgoing": bool, "cut_incoming": bool,
//                    "drop_ratio": 0..1, "delay_ms": n}: replaces the fault on that link
//                    (fields left out are off).
//   DELETE faults    {"peer": "..."} clears one link; an empty body clears all.
//   POST members     {"add": "prod"}: the leader makes that site a voter again (after
//                    `bastion rejoin` there; libraft catches it up first): 200 once the
//                    configuration committed, 202 while it still catches up after 12 s.
//
// Answers are JSON; errors are {"error": {"message": ...}} with 400 (bad request), 404 (no
// such path), 409 (refused in this state) or 503 (the node did not answer).

#include "actors/coordination/coordinator.hpp"
#include "actors/gateway/admin_port.hpp"
#include "actors/link_faults.hpp"
#include "actors/replicator.hpp"
#include "runtime/config/node_config.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <nlohmann/json_fwd.hpp>

#include <memory>

namespace bastion {

class cluster_admin final : public gateway::admin_port {
 public:
  /// REQUIRES: every reference outlives this object.
  cluster_admin(caf::actor_system& sys, const config::node_config& cfg,
                actors::replicator_actor replicator, caf::actor coordinator,
                const coordination::coordinator_view& view,
                std::shared_ptr<actors::link_faults> faults);

  void handle(const std::string& method, const std::string& path, const std::string& body,
              const std::string& principal,
              std::function<void(gateway::admin_reply)> done) override;

 private:
  void status(std::function<void(gateway::admin_reply)> done);
  void switchover(const std::string& body, const std::string& principal,
                  std::function<void(gateway::admin_reply)> done);
  gateway::admin_reply faults(const std::string& method, const std::string& body);
  nlohmann::json faults_in_force() const;  // the link faults set here, by peer
  /// The replica's state for `bastion status`: role, indexes, frame counts, peers with their
  /// lag, alerts with their sites named.
  nlohmann::json journal_json(const actors::replicator_status& s) const;
  void add_member(const std::string& body, std::function<void(gateway::admin_reply)> done);
  // "... peer 2: ..." -> "... peer 2 (dr-local): ..." in the replicator's alert lines.
  std::vector<std::string> name_sites(std::vector<std::string> alerts) const;
  std::string site_of(std::uint64_t replica_id) const;
  std::uint64_t replica_of(const std::string& site) const;  // 0: not a peer

  caf::actor_system& sys_;
  const config::node_config& cfg_;
  actors::replicator_actor replicator_;
  caf::actor coordinator_;
  const coordination::coordinator_view& view_;
  std::shared_ptr<actors::link_faults> faults_;
};

}  // namespace bastion
