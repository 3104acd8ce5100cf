#include "actors/scheduler/scheduler_actor.hpp"

#include <caf/send.hpp>

#include <cassert>

namespace bastion::serving {

namespace {

using self_ptr = scheduler_actor::stateful_pointer<scheduler_state>;
using phase = scheduler_state::phase;

scheduling::local_time local_now(const scheduler_state& st) {
  const auto wall = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(st.clock->wall()));
  return scheduling::to_local(wall, st.settings.utc_offset);
}

void publish_gauges(scheduler_state& st) {
  if (!st.metrics) return;
  for (std::size_t c = 0; c < scheduling::class_count; ++c) {
    const auto cls = static_cast<scheduling::priority_class>(c);
    st.metrics->set_queued(cls, st.policy->queued(cls));
    st.metrics->set_running(cls, st.policy->running(cls));
  }
}

void forget(scheduler_state& st, std::uint64_t ticket) {
  auto it = st.requests.find(ticket);
  if (it == st.requests.end()) return;
  auto by_id = st.tickets_by_request.find(it->second.request->request().request_id);
  if (by_id != st.tickets_by_request.end() && by_id->second == ticket)
    st.tickets_by_request.erase(by_id);
  st.requests.erase(it);
}

void send_start(self_ptr self, scheduler_state::entry& e, const scheduling::dispatch& d) {
  auto w = self->state.workers.find(d.worker);
  // The policy only places on registered workers; a missing one is a bug in this actor.
  assert(w != self->state.workers.end());
  e.at = phase::running;
  e.worker = d.worker;
  e.restart.reset();
  self->send(w->second, start_atom::value, work_item{e.request, d.model, d.fallback_model});
}

void arm_tick(self_ptr self) {
  auto& st = self->state;
  if (st.tick_armed || st.policy->queued_total() == 0) return;
  st.tick_armed = true;
  self->delayed_send(self, st.settings.tick, tick_atom::value);
}

/// Runs the policy and applies its decisions: preempts first (they free the slots the starts
/// use), then starts.
void schedule(self_ptr self) {
  auto& st = self->state;
  auto d = st.policy->schedule(local_now(st));
  for (const auto& p : d.preempts) {
    auto it = st.requests.find(p.request);
    assert(it != st.requests.end() && it->second.at == phase::running);
    it->second.at = phase::preempting;
    it->second.dequeued = false;
    it->second.request->request_preempt();
  }
  for (const auto& s : d.starts) {
    auto it = st.requests.find(s.request);
    assert(it != st.requests.end());
    if (it->second.at == phase::preempting) {
      it->second.restart = s;  // runs once its worker confirms the preemption
      continue;
    }
    send_start(self, it->second, s);
  }
  publish_gauges(st);
  arm_tick(self);
}

/// A request left the worker side for good (finished there, or confirmed preempted after it
/// was ended by a cancel or a queued deadline): free whatever the policy still holds for it.
void release(self_ptr self, std::uint64_t ticket, std::chrono::nanoseconds service) {
  auto& st = self->state;
  auto it = st.requests.find(ticket);
  if (it == st.requests.end()) return;
  auto& e = it->second;
  switch (e.at) {
    case phase::running:
      st.policy->finished(ticket, service);
      break;
    case phase::preempting:
      if (e.restart) {
        st.policy->finished(ticket, std::chrono::nanoseconds{0});  // the slot of the restart
      } else if (!e.dequeued) {
        st.policy->cancel(ticket);  // still queued for its restart
      }
      break;
    case phase::queued:
      st.policy->cancel(ticket);
      break;
  }
  if (!e.request->completed())  // a worker reports finished only for completed requests
    e.request->fail(gateway::error_code::internal, "the request ended without a result",
                    request_outcome::failed);
  forget(st, ticket);
}

gateway::inference_error refusal(const scheduling::admit_result& r, std::uint32_t retry_min_ms) {
  gateway::inference_error e;
  e.message = r.message;
  switch (r.code) {
    case scheduling::admit_code::overloaded:
      e.code = gateway::error_code::overloaded;
      e.retry_after_ms = r.retry_after_ms;
      break;
    case scheduling::admit_code::unknown_model:
      e.code = gateway::error_code::unknown_model;
      break;
    case scheduling::admit_code::draining:
      // Another node (or this one after its restart) can take it: a retryable overload.
      e.code = gateway::error_code::overloaded;
      e.retry_after_ms = retry_min_ms;
      break;
    case scheduling::admit_code::admitted:
      break;
  }
  return e;
}

}  // namespace

scheduler_actor::behavior_type scheduler_actor_impl(
    scheduler_actor::stateful_pointer<scheduler_state> self, scheduler_settings settings,
    const clock_source* clock, serving_metrics* metrics) {
  self->state.settings = std::move(settings);
  self->state.clock = clock;
  self->state.metrics = metrics;
  self->state.policy = std::make_unique<scheduling::scheduler_policy>(self->state.settings.policy);
  return {
      [self](submit_atom, served_request_ptr& r) {
        auto& st = self->state;
        const auto& req = r->request();
        if (st.tickets_by_request.count(req.request_id)) {
          r->fail(gateway::error_code::invalid_argument,
                  "request id '" + req.request_id + "' is already in flight",
                  request_outcome::invalid);
          return;
        }
        r->ticket = st.next_ticket++;
        const auto relative = req.deadline_ms > 0 ? std::chrono::milliseconds{req.deadline_ms}
                                                  : st.settings.deadline_default;
        r->deadline = st.clock->monotonic() + relative;
        scheduling::request_ticket t;
        t.id = r->ticket;
        t.model = req.model;
        t.cls = req.priority;
        t.deadline = r->deadline;
        const auto verdict = st.policy->admit(t);
        if (verdict.code != scheduling::admit_code::admitted) {
          const auto counted = verdict.code == scheduling::admit_code::unknown_model
                                   ? request_outcome::unknown_model
                                   : request_outcome::overloaded;
          r->complete(refusal(verdict, static_cast<std::uint32_t>(
                                           st.settings.policy.retry_after_min.count())),
                      counted);
          return;
        }
        st.tickets_by_request[req.request_id] = r->ticket;
        st.requests[r->ticket] = scheduler_state::entry{r, phase::queued, {}, {}, false};
        schedule(self);
      },
      [self](cancel_atom, const std::string& request_id) {
        auto& st = self->state;
        auto id = st.tickets_by_request.find(request_id);
        if (id == st.tickets_by_request.end()) return;
        const auto ticket = id->second;
        auto& e = st.requests.at(ticket);
        switch (e.at) {
          case phase::queued:
            st.policy->cancel(ticket);
            e.request->request_stop(stop_reason::cancelled);
            e.request->finish(gateway::finish_reason::cancelled, e.request->request().model,
                              request_outcome::cancelled);
            forget(st, ticket);
            schedule(self);
            return;
          case phase::running:
          case phase::preempting:
            // The worker ends it between steps (freeing its KV blocks) and reports finished.
            e.request->request_stop(stop_reason::cancelled);
            return;
        }
      },
      [self](register_atom, worker_registration& w) {
        auto& st = self->state;
        st.workers[w.state.id] = w.handle;
        st.policy->upsert_worker(std::move(w.state));
        schedule(self);
      },
      [self](finished_atom, std::uint64_t ticket, std::int64_t service_ns) {
        release(self, ticket, std::chrono::nanoseconds{service_ns});
        schedule(self);
      },
      [self](preempted_atom, std::uint64_t ticket) {
        auto& st = self->state;
        auto it = st.requests.find(ticket);
        if (it == st.requests.end()) return;
        auto& e = it->second;
        if (e.request->completed() || e.request->stop_requested() != stop_reason::none) {
          // Cancelled or expired while it was being preempted: it ends here.
          if (!e.request->completed())
            e.request->finish(gateway::finish_reason::cancelled, e.request->request().model,
                              request_outcome::cancelled);
          release(self, ticket, {});
          schedule(self);
          return;
        }
        if (e.at == phase::preempting && e.restart) {
          const auto d = *e.restart;
          send_start(self, e, d);
        } else if (e.at == phase::preempting) {
          e.at = phase::queued;  // the policy requeued it when it decided the preemption
        } else {
          // Handed back unasked (its worker's step failed): free the slot and queue it again,
          // so routing takes it to a healthy worker.
          st.policy->finished(ticket, std::chrono::nanoseconds{0});
          const auto& req = e.request->request();
          const auto verdict = st.policy->admit(scheduling::request_ticket{
              ticket, req.model, req.priority, e.request->deadline, false});
          if (verdict.code != scheduling::admit_code::admitted) {
            e.request->complete(refusal(verdict, static_cast<std::uint32_t>(
                                                     st.settings.policy.retry_after_min.count())),
                                request_outcome::overloaded);
            forget(st, ticket);
          } else {
            e.at = phase::queued;
          }
        }
        schedule(self);
      },
      [self](health_atom, const std::string& worker, bool healthy, const std::string&) {
        self->state.policy->set_health(worker, healthy);
        schedule(self);
      },
      [self](tick_atom) {
        auto& st = self->state;
        st.tick_armed = false;
        for (auto ticket : st.policy->expire(st.clock->monotonic())) {
          auto it = st.requests.find(ticket);
          if (it == st.requests.end()) continue;
          auto& e = it->second;
          e.request->fail(gateway::error_code::deadline_exceeded,
                          "the request waited in the queue past its deadline",
                          request_outcome::deadline);
          if (e.at == phase::preempting) {
            // Its worker still has to confirm; the entry goes when it does.
            e.dequeued = true;
            e.request->request_stop(stop_reason::deadline);
          } else {
            forget(st, ticket);
          }
        }
        schedule(self);
      },
      [self](drain_atom, bool cancel_all) -> bool {
        auto& st = self->state;
        st.draining = true;
        st.policy->start_drain();
        if (cancel_all) {
          for (auto it = st.requests.begin(); it != st.requests.end();) {
            auto& e = it->second;
            e.request->request_stop(stop_reason::draining);
            if (e.at == phase::queued) {
              st.policy->cancel(it->first);
              e.request->fail(gateway::error_code::cancelled,
                              "the node is shutting down; the request was not started",
                              request_outcome::cancelled);
              auto ticket = (it++)->first;
              forget(st, ticket);
              continue;
            }
            ++it;
          }
        }
        publish_gauges(st);
        return st.policy->drained() && st.requests.empty();
      },
      [self](snapshot_atom) -> scheduler_snapshot {
        auto& st = self->state;
        scheduler_snapshot s;
        for (std::size_t c = 0; c < scheduling::class_count; ++c) {
          const auto cls = static_cast<scheduling::priority_class>(c);
          s.queued.push_back(st.policy->queued(cls));
          s.running.push_back(st.policy->running(cls));
        }
        s.in_flight = st.requests.size();
        s.capacity_window = st.policy->window_name(local_now(st));
        s.draining = st.draining;
        s.drained = st.draining && st.policy->drained() && st.requests.empty();
        return s;
      },
  };
}

}  // namespace bastion::serving
