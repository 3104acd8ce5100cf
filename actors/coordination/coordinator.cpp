#include "actors/coordination/coordinator.hpp"

#include "actors/coordination/journal_records.hpp"
#include "actors/replicator_errors.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

namespace bastion::coordination {

namespace {

using time_point = coordinator_logic::time_point;

struct coordinator_state {
  coordinator_config cfg;
  actors::replicator_actor replicator;
  release_sink* sink = nullptr;
  coordinator_hooks hooks;
  const clock_source* clock = nullptr;
  coordinator_view* view = nullptr;
  std::unique_ptr<coordinator_logic> logic;
  release_gate gate;
  std::string leader_address;
  // A handover under way: draining toward `handover_target` until `handover_deadline`.
  std::uint64_t handover_target = 0;
  time_point handover_deadline{};
  bool handover_requested = false;

  time_point now() const { return time_point{clock->monotonic()}; }
  std::uint64_t wall_ns() const { return static_cast<std::uint64_t>(clock->wall().count()); }

  void publish() {
    coordinator_view::state s;
    s.ready = logic->ready();
    s.epoch = logic->epoch();
    s.term = logic->term();
    s.phase = to_string(logic->phase());
    s.leader_address = leader_address;
    s.last_failure = logic->last_failure();
    s.in_flight = gate.in_flight();
    if (auto p = logic->preferred()) s.preferred_site = to_string(*p);
    view->set(std::move(s));
  }

  void fail(const std::string& id, gateway::error_code code, const std::string& why) {
    sink->cancel_inner(id);
    sink->release_done(id, gateway::inference_error{code, why, id, 0, leader_address});
  }

  void fail_all(const std::vector<gate_failure>& failures, const std::string& why) {
    for (const auto& f : failures) {
      switch (f.code) {
        case failure_code::not_primary:
          fail(f.request_id, gateway::error_code::not_primary,
               "this site stopped leading before the request was admitted (" + why +
                   "); retry at the leader");
          break;
        case failure_code::outcome_unknown:
          fail(f.request_id, gateway::error_code::outcome_unknown,
               "this site stopped leading while the request ran (" + why +
                   "); retry with the same request id to learn its outcome");
          break;
        case failure_code::overloaded:
          fail(f.request_id, gateway::error_code::overloaded,
               "the request produced more tokens than may be held while its admission commits");
          break;
      }
    }
  }
};

using coordinator_actor_t = caf::stateful_actor<coordinator_state>;

bool is_not_leader(const caf::error& err) {
  return err.category() == actors::replicator_category::value &&
         err.code() == static_cast<std::uint8_t>(actors::replicator_errc::not_leader);
}

void run(coordinator_actor_t* self, const std::vector<coordinator_action>& actions);

void report_step(coordinator_actor_t* self, action_kind step, std::uint64_t epoch) {
  const step_hook* hook = nullptr;
  auto& h = self->state.hooks;
  if (step == action_kind::apply_config) hook = &h.apply_config;
  if (step == action_kind::check_models) hook = &h.check_models;
  if (step == action_kind::run_canaries) hook = &h.run_canaries;
  const auto kind = static_cast<std::uint8_t>(step);
  if (!hook || !*hook) {
    self->send(self, step_atom::value, kind, epoch, true, std::string{});
    return;
  }
  caf::actor me = caf::actor_cast<caf::actor>(self);
  (*hook)(epoch, [me, kind, epoch](bool ok, std::string why) {
    caf::anon_send(me, step_atom::value, kind, epoch, ok, std::move(why));
  });
}

void propose_epoch_start(coordinator_actor_t* self, std::uint64_t epoch) {
  auto& st = self->state;
  auto bytes = encode_epoch_start({epoch, st.cfg.site, st.cfg.replica_id, epoch}, st.wall_ns());
  self->request(st.replicator, caf::infinite, actors::propose_atom::value, std::move(bytes))
      .then([](std::uint64_t) { /* the commit arrives through the subscription */ },
            [self, epoch](const caf::error& err) {
              run(self,
                  self->state.logic->on_step_result(action_kind::propose_epoch_start, epoch, false,
                                                    self->system().render(err), self->state.now()));
            });
}

void run(coordinator_actor_t* self, const std::vector<coordinator_action>& actions) {
  auto& st = self->state;
  for (const auto& a : actions) {
    switch (a.kind) {
      case action_kind::propose_epoch_start:
        propose_epoch_start(self, a.epoch);
        break;
      case action_kind::apply_config:
      case action_kind::check_models:
      case action_kind::run_canaries:
        report_step(self, a.kind, a.epoch);
        break;
      case action_kind::open_gate:
        st.gate.open(a.epoch);
        st.handover_target = 0;
        break;
      case action_kind::close_gate:
        st.leader_address = a.leader_address;
        st.handover_target = 0;
        st.fail_all(st.gate.lose_leadership(), a.reason);
        break;
      case action_kind::drain_and_transfer:
        st.gate.pause_admission();
        st.handover_target = a.target;
        st.handover_requested = false;
        st.handover_deadline = st.now() + st.cfg.drain_timeout;
        break;
    }
  }
  st.publish();
}

/// Drives a handover: once in-flight work is released (or the drain time is up), asks the
/// replicator to transfer; a failed transfer resumes admission here.
void drive_handover(coordinator_actor_t* self) {
  auto& st = self->state;
  if (st.handover_target == 0 || st.handover_requested) return;
  if (st.gate.in_flight() != 0 && st.now() < st.handover_deadline) return;
  st.handover_requested = true;
  self->request(st.replicator, caf::infinite, actors::transfer_atom::value, st.handover_target)
      .then([](std::uint64_t) { /* the role change follows */ },
            [self](const caf::error&) {
              auto& s = self->state;
              s.handover_target = 0;
              s.handover_requested = false;
              if (s.logic->ready()) s.gate.resume_admission();
              s.publish();
            });
}

/// While leading: asks the replicator how far each peer has caught up, for the handover to a
/// more preferred site.
void poll_peers(coordinator_actor_t* self) {
  auto& st = self->state;
  self->request(st.replicator, st.cfg.tick, actors::status_atom::value)
      .then(
          [self](const actors::replicator_status& s) {
            auto& st2 = self->state;
            if (s.role != actors::replica_role::leader) return;
            for (std::size_t i = 0; i < s.peer_ids.size() && i < s.peer_match_index.size(); ++i) {
              auto site = st2.cfg.peer_sites.find(s.peer_ids[i]);
              if (site == st2.cfg.peer_sites.end()) continue;
              const auto rank = parse_site(site->second);
              if (!rank) continue;
              const bool caught_up = s.peer_match_index[i] + st2.cfg.caught_up_lag >= s.last_index;
              run(self, st2.logic->on_peer_progress(s.peer_ids[i], *rank, caught_up, st2.now()));
            }
          },
          [](const caf::error&) { /* a slow status: the next tick asks again */ });
}

void on_committed(coordinator_actor_t* self, const actors::committed_entry& e) {
  auto& st = self->state;
  auto decoded = decode_record(e.payload);
  // An entry that is not a JournalRecord carries nothing a coordinator acts on; every replica
  // applies the same entries, so there is no one to tell.
  if (std::holds_alternative<std::string>(decoded)) return;
  const auto& rec = std::get<committed_record>(decoded);
  if (auto* es = std::get_if<committed_epoch_start>(&rec)) {
    run(self, st.logic->on_epoch_committed(es->record.epoch, st.now()));
  } else if (auto* a = std::get_if<committed_admission>(&rec)) {
    st.gate.admission_seen(a->request_id, a->fingerprint);
    auto tokens = st.gate.admission_committed(a->request_id);
    if (!tokens.empty()) st.sink->release_tokens(a->request_id, std::move(tokens));
  } else if (auto* c = std::get_if<committed_completion>(&rec)) {
    const std::string bytes(e.payload.begin(), e.payload.end());
    if (st.gate.completion_committed(c->request_id, bytes, completion_is_cancellation(e.payload)))
      st.sink->release_committed(c->request_id, e.payload);
    drive_handover(self);
  } else if (auto* l = std::get_if<committed_leadership>(&rec)) {
    // A site name this build does not know restores the default order rather than guessing.
    run(self, st.logic->on_preference(parse_site(l->preferred_site), st.now()));
  }
}

caf::behavior coordinator_impl(coordinator_actor_t* self, coordinator_config cfg,
                               actors::replicator_actor replicator, release_sink* sink,
                               coordinator_hooks hooks, const clock_source* clock,
                               coordinator_view* view) {
  auto& st = self->state;
  cfg.logic.self = parse_site(cfg.site).value_or(site_rank::dr_remote);
  cfg.logic.self_id = cfg.replica_id;
  st.logic = std::make_unique<coordinator_logic>(cfg.logic);
  st.gate = release_gate{cfg.gate};
  st.cfg = std::move(cfg);
  st.replicator = replicator;
  st.sink = sink;
  st.hooks = std::move(hooks);
  st.clock = clock;
  st.view = view;
  st.publish();

  self->request(replicator, caf::infinite, actors::subscribe_atom::value,
                caf::actor_cast<actors::commit_subscriber>(self))
      .then([](std::uint64_t) {});
  self->request(replicator, caf::infinite, actors::watch_role_atom::value,
                caf::actor_cast<actors::role_observer>(self))
      .then([self](const actors::replicator_status& s) {
        run(self, self->state.logic->on_role(s.role == actors::replica_role::leader, s.term,
                                             s.leader_id, s.leader_address));
      });
  // A replicator that dies takes this site out of the cluster: close the gate at once.
  self->monitor(replicator);
  self->set_down_handler([self](const caf::down_msg&) {
    auto& s = self->state;
    run(self, s.logic->on_role(false, s.logic->term(), 0, {}));
    self->quit(caf::exit_reason::normal);
  });
  self->send(self, tick_atom::value);

  return {
      [self](begin_atom, const std::string& id, const std::vector<std::uint8_t>& admission) {
        auto& s = self->state;
        const auto r = s.gate.begin(id, admission_fingerprint(admission));
        switch (r.code) {
          case begin_code::id_reused:
            s.sink->release_done(
                id, gateway::inference_error{
                        gateway::error_code::invalid_argument,
                        "request id '" + id +
                            "' was already used for a different request (another principal, "
                            "model or prompt); a retry must repeat its request exactly, a new "
                            "request needs a new id",
                        id,
                        0,
                        {}});
            return;
          case begin_code::replay:
            s.sink->release_committed(
                id, std::vector<std::uint8_t>(r.outcome.begin(), r.outcome.end()));
            return;
          case begin_code::not_primary:
            s.sink->release_done(
                id, gateway::inference_error{gateway::error_code::not_primary,
                                             "site '" + s.cfg.site + "' is not the ready primary",
                                             id, 0, s.leader_address});
            return;
          case begin_code::duplicate_in_flight:
            s.sink->release_done(
                id, gateway::inference_error{gateway::error_code::invalid_argument,
                                             "request id '" + id + "' is already running here",
                                             id,
                                             0,
                                             {}});
            return;
          case begin_code::overloaded:
            s.sink->release_done(
                id, gateway::inference_error{gateway::error_code::overloaded,
                                             "too many requests in flight at this site",
                                             id,
                                             100,
                                             {}});
            return;
          case begin_code::started:
            break;
        }
        self->request(s.replicator, caf::infinite, actors::propose_atom::value, admission)
            .then([](std::uint64_t) { /* the commit arrives through the subscription */ },
                  [self, id](const caf::error& err) {
                    auto& s2 = self->state;
                    if (!s2.gate.forget(id)) return;  // already ended (leadership lost)
                    s2.fail(id,
                            is_not_leader(err) ? gateway::error_code::not_primary
                                               : gateway::error_code::outcome_unknown,
                            "admission record not committed: " + self->system().render(err));
                  });
        s.sink->start_inner(id);
        s.publish();
      },
      [self](token_atom, const std::string& id, std::string& text, std::uint32_t token_id) {
        auto& s = self->state;
        auto out = s.gate.on_token(id, held_token{std::move(text), token_id});
        if (!out.empty()) s.sink->release_tokens(id, std::move(out));
        s.fail_all(s.gate.take_failures(), "held tokens overflowed");
      },
      [self](done_atom, const std::string& id, const std::vector<std::uint8_t>& completion,
             bool failed) {
        auto& s = self->state;
        // A failure before anything was journaled (refused by the scheduler, cancelled early)
        // needs no completion record: the client hears it at once.
        if (failed && s.gate.abandon(id)) {
          s.sink->release_done(id, outcome_of_completion(completion));
          s.publish();
          drive_handover(self);
          return;
        }
        if (!s.gate.finish(id)) return;  // ended already (leadership lost)
        self->request(s.replicator, caf::infinite, actors::propose_atom::value, completion)
            .then([](std::uint64_t) {},
                  [self, id](const caf::error& err) {
                    auto& s2 = self->state;
                    if (!s2.gate.forget(id)) return;
                    s2.fail(id, gateway::error_code::outcome_unknown,
                            "completion record not committed: " + self->system().render(err) +
                                "; retry with the same request id to learn its outcome");
                  });
      },
      [self](peer_atom, std::uint64_t peer, std::uint8_t rank, bool caught_up) {
        auto& s = self->state;
        run(self,
            s.logic->on_peer_progress(peer, static_cast<site_rank>(rank), caught_up, s.now()));
      },
      [self](step_atom, std::uint8_t step, std::uint64_t epoch, bool ok, const std::string& why) {
        auto& s = self->state;
        run(self, s.logic->on_step_result(static_cast<action_kind>(step), epoch, ok, why, s.now()));
      },
      [self](tick_atom) {
        auto& s = self->state;
        if (s.logic->phase() != coordinator_phase::follower && !s.cfg.peer_sites.empty())
          poll_peers(self);
        run(self, s.logic->on_tick(s.now()));
        drive_handover(self);
        self->delayed_send(self, s.cfg.tick, tick_atom::value);
      },
      [self](actors::role_changed_atom, const actors::replicator_status& status) {
        auto& s = self->state;
        run(self, s.logic->on_role(status.role == actors::replica_role::leader, status.term,
                                   status.leader_id, status.leader_address));
      },
      [self](actors::committed_atom, const actors::committed_entry& e) { on_committed(self, e); },
      [self](switchover_atom, const std::string& site,
             const std::string& changed_by) -> caf::result<std::string> {
        auto& s = self->state;
        if (!parse_site(site))
          return caf::make_error(caf::sec::invalid_argument,
                                 "unknown site '" + site + "' (prod, dr-local or dr-remote)");
        if (!s.logic->ready())
          return caf::make_error(
              caf::sec::invalid_argument,
              "site '" + s.cfg.site + "' is not the ready primary (" + to_string(s.logic->phase()) +
                  "); ask the leader at " +
                  (s.leader_address.empty() ? "an unknown address" : s.leader_address));
        auto rp = self->make_response_promise<std::string>();
        auto bytes = encode_leadership_preference(site, changed_by, s.wall_ns());
        self->request(s.replicator, caf::infinite, actors::propose_atom::value, std::move(bytes))
            .then(
                [rp, site, here = s.cfg.site](std::uint64_t index) mutable {
                  rp.deliver("leadership preference for " + site + " committed at index " +
                             std::to_string(index) +
                             (site == here ? "; this site keeps leading"
                                           : "; leadership moves once it has caught up"));
                },
                [self, rp](const caf::error& err) mutable {
                  rp.deliver(caf::make_error(
                      caf::sec::invalid_argument,
                      "the preference did not commit: " + self->system().render(err)));
                });
        return rp;
      },
  };
}

}  // namespace

caf::actor spawn_coordinator(caf::actor_system& sys, coordinator_config cfg,
                             actors::replicator_actor replicator, release_sink& sink,
                             coordinator_hooks hooks, const clock_source& clock,
                             coordinator_view& view) {
  return sys.spawn(coordinator_impl, std::move(cfg), std::move(replicator), &sink, std::move(hooks),
                   &clock, &view);
}

}  // namespace bastion::coordination
