#pragma once
// The site coordinator actor (DESIGN.md §4, §5): follows its replicator's Raft role with
// coordinator_logic, writes the epoch-start, opens and closes the release gate, and carries
// every request's admission and completion records through the journal before anything of it
// leaves the building (release_gate). The serving side talks to it through journaled_port and
// hears back through a release_sink.
//
// Messages (all local; the replicator's types are announced by announce_replicator_types):
//   (begin_atom, request_id, admission record bytes)   a request wants to start
//   (token_atom, request_id, text, token_id)           the worker produced a token
//   (done_atom, request_id, completion record bytes, failed_before_admission_ok)
//                                                      the worker finished
//   (peer_atom, peer replica id, site rank, caught_up) a peer's replica progress
//   (step_atom, step, epoch, ok, why)                  a readiness hook finished
//   (tick_atom)                                        its own timer
//   (switchover_atom, site, changed_by) -> std::string  an operator's switchover: the ready
//        leader journals a leadership preference for `site`; once it commits every coordinator
//        puts `site` first, and the leader drains and hands over when `site` has caught up.
//        The reply (after the commit) says so; an error names why not (not the ready primary,
//        unknown site, the record did not commit).
//   the replicator's role_changed_atom and committed_atom messages

#include "actors/coordination/coordinator_logic.hpp"
#include "actors/coordination/release_gate.hpp"
#include "actors/gateway/inference_port.hpp"
#include "actors/replicator.hpp"
#include "runtime/clock/clock.hpp"

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace bastion::coordination {

using begin_atom = caf::atom_constant<caf::atom("cbegin")>;
using token_atom = caf::atom_constant<caf::atom("ctoken")>;
using done_atom = caf::atom_constant<caf::atom("cdone")>;
using peer_atom = caf::atom_constant<caf::atom("cpeer")>;
using step_atom = caf::atom_constant<caf::atom("cstep")>;
using tick_atom = caf::atom_constant<caf::atom("ctick")>;
using switchover_atom = caf::atom_constant<caf::atom("cswitch")>;

/// Where the coordinator sends its verdicts. Called on the coordinator's thread; must not
/// block (hand the work on, as the gateway's callbacks do).
class release_sink {
 public:
  virtual ~release_sink() = default;
  /// The request's admission is proposed: run it now (prefill overlaps the commit).
  virtual void start_inner(const std::string& request_id) = 0;
  /// Stop the request's work (its client has its answer or its error already).
  virtual void cancel_inner(const std::string& request_id) = 0;
  /// Tokens that may leave now, in order.
  virtual void release_tokens(const std::string& request_id, std::vector<held_token> tokens) = 0;
  /// The request's one and only outcome, decided here (an error; nothing was journaled about
  /// it, or its work is abandoned).
  virtual void release_done(const std::string& request_id, gateway::completion outcome) = 0;
  /// The request's completion record committed (or, for a retry, had committed before): its
  /// one and only outcome may leave now.
  virtual void release_committed(const std::string& request_id,
                                 const std::vector<std::uint8_t>& completion_record) = 0;
};

/// A readiness step (apply the configuration, check models, run canaries) for `epoch`; calls
/// `done` exactly once, from any thread. An empty hook succeeds at once.
using step_done = std::function<void(bool ok, std::string why)>;
using step_hook = std::function<void(std::uint64_t epoch, step_done done)>;

struct coordinator_hooks {
  step_hook apply_config;
  step_hook check_models;
  step_hook run_canaries;
};

struct coordinator_config {
  std::string site = "prod";  // prod | dr-local | dr-remote
  std::uint64_t replica_id = 0;
  coordinator_settings logic;  // its `self` and `self_id` are set from site and replica_id
  release_gate_limits gate;
  bool retain_text = true;  // journal the answer's text so retries after failover get it
  std::chrono::milliseconds tick{100};
  std::chrono::milliseconds drain_timeout{5000};  // a handover waits this long for in-flight work
  /// The other replicas' sites, for the preferred-site handover (prod > dr-local > dr-remote).
  std::map<std::uint64_t, std::string> peer_sites;
  /// A peer counts as caught up when its match index is at most this far behind our log.
  std::uint64_t caught_up_lag = 0;
};

/// What other threads may read about the coordinator (the gateway's /readyz and redirects).
class coordinator_view {
 public:
  struct state {
    bool ready = false;
    std::uint64_t epoch = 0;
    std::uint64_t term = 0;
    std::string phase = "follower";
    std::string leader_address;  // where to redirect when not ready (may be empty)
    std::string last_failure;
    std::size_t in_flight = 0;
    std::string preferred_site;  // the committed switchover preference; empty: default order
  };
  state get() const {
    std::lock_guard<std::mutex> lock{mutex_};
    return state_;
  }
  void set(state s) {
    std::lock_guard<std::mutex> lock{mutex_};
    state_ = std::move(s);
  }

 private:
  mutable std::mutex mutex_;
  state state_;
};

/// Spawns the coordinator for `replicator`. It subscribes to the replicator's commits and role
/// changes at once. REQUIRES: `sink`, `clock` and `view` outlive the actor.
caf::actor spawn_coordinator(caf::actor_system& sys, coordinator_config cfg,
                             actors::replicator_actor replicator, release_sink& sink,
                             coordinator_hooks hooks, const clock_source& clock,
                             coordinator_view& view);

}  // namespace bastion::coordination
