#include "actors/scheduler/scheduler_actor.hpp"

#include <caf/send.hpp>

#include <algorithm>
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

using request_iterator = decltype(scheduler_state::requests)::iterator;

/// Drops a request's entry and its id.
void forget(scheduler_state& st, request_iterator it) {
  // The id's key views the request's own id: erased before the entry (and the request) go.
  auto by_id = st.tickets_by_request.find(it->second.request->request().request_id);
  if (by_id != st.tickets_by_request.end() && by_id->second == it->first)
    st.tickets_by_request.erase(by_id);
  st.requests.erase(it);
}

void forget(scheduler_state& st, std::uint64_t ticket) {
  if (auto it = st.requests.find(ticket); it != st.requests.end()) forget(st, it);
}

/// Starts decided together, grouped by worker: each worker gets one message per pass.
struct start_batch {
  const std::string* worker_id = nullptr;  // the key in scheduler_state::workers
  const worker_actor* worker = nullptr;
  work_batch batch;
};

/// Adds `d` to its worker's batch in `out`; `more` (at least 1) bounds the starts still to
/// stage in this pass, this one included, so a new batch is sized once.
void stage_start(self_ptr self, scheduler_state::entry& e, scheduling::dispatch&& d,
                 std::vector<start_batch>& out, std::size_t more) {
  e.at = phase::running;
  e.restart.reset();
  // A pass's starts mostly go to few workers: look among this pass's batches first, and up
  // the worker's handle only for a worker new to the pass.
  auto b = std::find_if(out.begin(), out.end(),
                        [&](const start_batch& x) { return *x.worker_id == d.worker; });
  if (b == out.end()) {
    auto w = self->state.workers.find(d.worker);
    // The policy only places on registered workers; a missing one is a bug in this actor.
    assert(w != self->state.workers.end());
    b = out.insert(out.end(), start_batch{&w->first, &w->second, {}});
    b->batch.items.reserve(more);
  }
  b->batch.items.push_back(work_item{e.request, std::move(d.model), d.fallback_model});
}

void send_starts(self_ptr self, std::vector<start_batch>& out) {
  for (auto& b : out) self->send(*b.worker, start_atom::value, std::move(b.batch));
  out.clear();
}

void arm_tick(self_ptr self) {
  auto& st = self->state;
  if (st.tick_armed || st.policy->queued_total() == 0) return;
  st.tick_armed = true;
  self->delayed_send(self, st.settings.tick, tick_atom::value);
}

/// Ends the queued requests whose deadline has passed: they never start.
void expire_queued(self_ptr self, std::chrono::nanoseconds now) {
  auto& st = self->state;
  for (auto ticket : st.policy->expire(now)) {
    auto it = st.requests.find(ticket);
    if (it == st.requests.end()) continue;
    auto& e = it->second;
    e.request->fail(gateway::error_code::deadline_exceeded,
                    "the request waited in the queue past its deadline", request_outcome::deadline);
    if (e.at == phase::preempting) {
      // Its worker still has to confirm; the entry goes when it does.
      e.dequeued = true;
      e.request->request_stop(stop_reason::deadline);
    } else {
      forget(st, it);
    }
  }
}

/// One scheduling pass: expires queued requests past their deadline, runs the policy and
/// applies its decisions: preempts first (they free the slots the starts use), then starts,
/// one message per worker. Reads each clock once.
void run_pass(self_ptr self) {
  auto& st = self->state;
  st.pass_due = false;
  st.messages_since_due = 0;
  ++st.passes;
  expire_queued(self, st.clock->monotonic());
  auto d = st.policy->schedule(local_now(st));
  for (const auto& p : d.preempts) {
    auto it = st.requests.find(p.request);
    assert(it != st.requests.end() && it->second.at == phase::running);
    it->second.at = phase::preempting;
    it->second.dequeued = false;
    it->second.request->request_preempt();
  }
  std::vector<start_batch> out;
  for (std::size_t i = 0; i < d.starts.size(); ++i) {
    auto& s = d.starts[i];
    auto it = st.requests.find(s.request);
    assert(it != st.requests.end());
    if (it->second.at == phase::preempting) {
      it->second.restart = std::move(s);  // runs once its worker confirms the preemption
      continue;
    }
    stage_start(self, it->second, std::move(s), out, d.starts.size() - i);
  }
  send_starts(self, out);
  publish_gauges(st);
  arm_tick(self);
}

/// Marks a pass as due: something changed what could run.
void pass_due(self_ptr self) { self->state.pass_due = true; }

/// Called at the end of every handler: runs a due pass once no other message waits (so the
/// messages that arrived together share it), or when the bound of deferred messages is reached.
void end_of_message(self_ptr self) {
  auto& st = self->state;
  if (!st.pass_due) return;
  if (self->mailbox().empty() || ++st.messages_since_due >= st.settings.pass_coalesce_max) {
    run_pass(self);
    return;
  }
  arm_tick(self);  // a backstop: the tick runs the pass should no handled message follow
}

/// Before answering about the state: the answer must not show work only waiting for a pass.
void run_due_pass(self_ptr self) {
  if (self->state.pass_due) run_pass(self);
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
  forget(st, it);
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

void admit(self_ptr self, served_request_ptr& r) {
  auto& st = self->state;
  const auto& req = r->request();
  // One lookup both refuses a duplicate id and reserves the id for this request. The key views
  // the request's own id, which lives as long as the entry below holds the request.
  auto [by_id, fresh] =
      st.tickets_by_request.try_emplace(std::string_view{req.request_id}, st.next_ticket);
  if (!fresh) {
    r->fail(gateway::error_code::invalid_argument,
            "request id '" + req.request_id + "' is already in flight", request_outcome::invalid);
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
  const auto verdict = st.policy->admit(std::move(t));
  if (verdict.code != scheduling::admit_code::admitted) {
    st.tickets_by_request.erase(by_id);
    const auto counted = verdict.code == scheduling::admit_code::unknown_model
                             ? request_outcome::unknown_model
                             : request_outcome::overloaded;
    r->complete(
        refusal(verdict, static_cast<std::uint32_t>(st.settings.policy.retry_after_min.count())),
        counted);
    return;
  }
  const auto ticket = r->ticket;
  st.requests.emplace(ticket, scheduler_state::entry{std::move(r), phase::queued, {}, false});
  pass_due(self);
}

void cancel(self_ptr self, const std::string& request_id) {
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
      pass_due(self);
      return;
    case phase::running:
    case phase::preempting:
      // The worker ends it between steps (freeing its KV blocks) and reports finished.
      e.request->request_stop(stop_reason::cancelled);
      return;
  }
}

void preempted(self_ptr self, std::uint64_t ticket) {
  auto& st = self->state;
  auto it = st.requests.find(ticket);
  if (it == st.requests.end()) return;
  auto& e = it->second;
  pass_due(self);
  if (e.request->completed() || e.request->stop_requested() != stop_reason::none) {
    // Cancelled or expired while it was being preempted: it ends here.
    if (!e.request->completed())
      e.request->finish(gateway::finish_reason::cancelled, e.request->request().model,
                        request_outcome::cancelled);
    release(self, ticket, {});
    return;
  }
  if (e.at == phase::preempting && e.restart) {
    auto d = std::move(*e.restart);
    std::vector<start_batch> out;
    stage_start(self, e, std::move(d), out, 1);
    send_starts(self, out);
  } else if (e.at == phase::preempting) {
    e.at = phase::queued;  // the policy requeued it when it decided the preemption
  } else {
    // Handed back unasked (its worker's step failed): free the slot and queue it again,
    // so routing takes it to a healthy worker.
    st.policy->finished(ticket, std::chrono::nanoseconds{0});
    const auto& req = e.request->request();
    const auto verdict = st.policy->admit(
        scheduling::request_ticket{ticket, req.model, req.priority, e.request->deadline, false});
    if (verdict.code != scheduling::admit_code::admitted) {
      e.request->complete(
          refusal(verdict, static_cast<std::uint32_t>(st.settings.policy.retry_after_min.count())),
          request_outcome::overloaded);
      forget(st, ticket);
    } else {
      e.at = phase::queued;
    }
  }
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
        admit(self, r);
        end_of_message(self);
      },
      [self](cancel_atom, const std::string& request_id) {
        cancel(self, request_id);
        end_of_message(self);
      },
      [self](register_atom, worker_registration& w) {
        auto& st = self->state;
        st.workers[w.state.id] = w.handle;
        st.policy->upsert_worker(std::move(w.state));
        pass_due(self);
        end_of_message(self);
      },
      [self](finished_atom, std::uint64_t ticket, std::int64_t service_ns) {
        release(self, ticket, std::chrono::nanoseconds{service_ns});
        pass_due(self);
        end_of_message(self);
      },
      [self](finished_atom, std::vector<finished_report>& reports) {
        for (const auto& f : reports)
          release(self, f.ticket, std::chrono::nanoseconds{f.service_ns});
        pass_due(self);
        end_of_message(self);
      },
      [self](preempted_atom, std::uint64_t ticket) {
        preempted(self, ticket);
        end_of_message(self);
      },
      [self](health_atom, const std::string& worker, bool healthy, const std::string&) {
        self->state.policy->set_health(worker, healthy);
        pass_due(self);
        end_of_message(self);
      },
      [self](tick_atom) {
        self->state.tick_armed = false;
        pass_due(self);  // the pass expires queued deadlines and re-reads the time windows
        end_of_message(self);
      },
      [self](drain_atom, bool cancel_all) -> bool {
        run_due_pass(self);
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
              // Erasing from an unordered_map leaves the other iterators valid.
              forget(st, it++);
              continue;
            }
            ++it;
          }
        }
        publish_gauges(st);
        return st.policy->drained() && st.requests.empty();
      },
      [self](snapshot_atom) -> scheduler_snapshot {
        run_due_pass(self);
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
        s.passes = st.passes;
        return s;
      },
  };
}

}  // namespace bastion::serving
