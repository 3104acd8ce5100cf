#pragma once
// This node's part in the three-site cluster (DESIGN.md §5), when its config has [cluster]:
// its replica of the journal (a file_store under cluster.journal_dir and a replicator), the
// journal links to the other sites, the site coordinator with its readiness steps (models
// loaded, a canary answered), and the journaled port the gateway serves through. Private to
// embed/.

#include "actors/coordination/coordinator.hpp"
#include "actors/coordination/journaled_port.hpp"
#include "actors/link_faults.hpp"
#include "actors/replicator.hpp"
#include "actors/serving/local_serving.hpp"
#include "embed/cluster_admin.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/config/node_config.hpp"
#include "runtime/journal/file_store.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace bastion {

class cluster_member {
 public:
  /// Starts everything; throws start_error naming what failed (journal, link, replicator).
  /// The journal's series (role, term, lag, alerts) go to `registry`.
  /// REQUIRES: `serving`, `registry` and `clock` outlive the member.
  cluster_member(caf::actor_system& sys, const config::node_config& cfg,
                 serving::local_serving& serving, metrics::registry& registry,
                 const clock_source& clock);
  ~cluster_member();  // stops the actors in order and waits for them
  cluster_member(const cluster_member&) = delete;
  cluster_member& operator=(const cluster_member&) = delete;

  gateway::inference_port& port() { return *port_; }
  coordination::coordinator_view::state state() const { return view_.get(); }
  std::uint16_t journal_port() const { return journal_port_; }
  actors::replicator_actor replicator() const { return replicator_; }
  caf::actor coordinator() const { return coordinator_; }
  /// The operator's endpoints (status, switchover, link faults) the gateway serves.
  gateway::admin_port& admin() { return *admin_; }

 private:
  coordination::coordinator_hooks make_hooks();

  caf::actor_system& sys_;
  const config::node_config& cfg_;
  serving::local_serving& serving_;
  const clock_source& clock_;
  std::unique_ptr<journal::file_store> store_;
  std::shared_ptr<actors::link_faults> faults_ = std::make_shared<actors::link_faults>();
  actors::replicator_actor replicator_;
  actors::raft_link forwarder_;
  std::uint16_t journal_port_ = 0;
  std::vector<caf::actor> linkers_;
  coordination::coordinator_view view_;
  std::unique_ptr<coordination::journaled_port> port_;
  caf::actor coordinator_;
  std::unique_ptr<cluster_admin> admin_;
  std::mutex checks_mutex_;
  std::vector<std::future<void>> checks_;  // model checks in flight; joined at teardown
};

}  // namespace bastion
