// scheduler_actor on CAF's deterministic test coordinator, with scripted workers that record
// what they are told and report back when the test says so. Checks the message protocol the
// real worker follows: starts go to a worker with a free slot, refusals end the request at once
// with the gateway's typed errors, a queued request past its deadline ends with
// deadline_exceeded on the tick, production preempts a batch request which later resumes on
// the same served_request, a request is never run twice when its preemption races its end,
// cancel reaches queued and running requests, drain refuses and cancels, and a request handed
// back by a failing worker continues on a healthy one.

#define CAF_SUITE scheduler_actor

#include "actors/scheduler/scheduler_actor.hpp"

#include <caf/test/dsl.hpp>
#include <caf/test/unit_test_impl.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace bastion;
using namespace bastion::serving;
using bastion::gateway::error_code;
using bastion::gateway::finish_reason;
using bastion::scheduling::priority_class;

namespace {

// What one scripted worker was told, in order.
struct worker_log {
  std::vector<work_item> starts;
  std::size_t start_messages = 0;
};

worker_actor::behavior_type scripted_worker(worker_actor::pointer self, worker_log* log) {
  return {
      [log](start_atom, work_batch& batch) {
        ++log->start_messages;
        for (auto& item : batch.items) log->starts.push_back(std::move(item));
      },
      [self](snapshot_atom) -> worker_snapshot {
        worker_snapshot s;
        s.id = caf::to_string(self->address());
        return s;
      },
  };
}

// A request as a client sees it: its tokens and its one completion.
struct client_view {
  std::vector<std::string> tokens;
  std::optional<gateway::completion> done;
  int done_calls = 0;

  const gateway::inference_error* error() const {
    return done ? std::get_if<gateway::inference_error>(&*done) : nullptr;
  }
  const gateway::final_result* result() const {
    return done ? std::get_if<gateway::final_result>(&*done) : nullptr;
  }
};

struct fixture : test_coordinator_fixture<> {
  manual_clock clock{std::chrono::seconds{1000}};
  metrics::registry registry;
  serving_metrics metrics{registry};
  scheduler_actor scheduler;
  worker_log log_a;
  worker_actor worker_a;
  std::map<std::string, std::shared_ptr<client_view>> clients;

  explicit fixture(std::size_t slots = 1) {
    scheduler_settings s;
    s.policy.queue_max = {2, 2, 2, 2};
    s.policy.retry_after_min = std::chrono::milliseconds{50};
    s.deadline_default = std::chrono::milliseconds{5000};
    s.tick = std::chrono::milliseconds{10};
    s.pass_coalesce_max = 3;
    scheduler = sys.spawn(scheduler_actor_impl, s, &clock, &metrics);
    worker_a = sys.spawn(scripted_worker, &log_a);
    scheduling::worker_state w;
    w.id = "a";
    w.kind = scheduling::worker_kind::cpu;
    w.models = {"m"};
    w.slots = slots;
    self->send(scheduler, register_atom::value, worker_registration{w, worker_a});
    sched.run();
  }

  // The base fixture runs the coordinator once more in its destructor, after these members are
  // gone: the actors must be gone first (and the scheduler's tick with them).
  ~fixture() {
    caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(worker_a, caf::exit_reason::user_shutdown);
    sched.run();
  }

  served_request_ptr submit(const std::string& id, priority_class cls = priority_class::interactive,
                            std::uint32_t deadline_ms = 0, const std::string& model = "m") {
    auto r = send_submit(id, cls, deadline_ms, model);
    sched.run();
    return r;
  }

  // Only puts the submit in the scheduler's mailbox: messages sent together arrive together.
  served_request_ptr send_submit(const std::string& id,
                                 priority_class cls = priority_class::interactive,
                                 std::uint32_t deadline_ms = 0, const std::string& model = "m") {
    gateway::inference_request req;
    req.request_id = id;
    req.model = model;
    req.input = std::string{"hello"};
    req.priority = cls;
    req.deadline_ms = deadline_ms;
    req.stream = true;
    auto view = std::make_shared<client_view>();
    clients[id] = view;
    auto r = std::make_shared<served_request>(
        req, [view](gateway::token_event t) { view->tokens.push_back(t.text); },
        [view](gateway::completion c) {
          view->done = std::move(c);
          ++view->done_calls;
        },
        "prod", &metrics);
    self->send(scheduler, submit_atom::value, r);
    return r;
  }

  // The worker's side of ending a request: complete it, then report finished.
  void finish(const served_request_ptr& r, const std::string& text = "ok") {
    r->text = text;
    r->complete(gateway::final_result{text, finish_reason::stop, {1, 1}, "m", "prod", 0},
                request_outcome::completed);
    self->send(scheduler, finished_atom::value, r->ticket, std::int64_t{1000000});
    sched.run();
  }

  scheduler_snapshot snapshot() {
    scheduler_snapshot out;
    self->send(scheduler, snapshot_atom::value);
    sched.run();
    self->receive([&](scheduler_snapshot& s) { out = std::move(s); });
    return out;
  }

  bool drain(bool cancel_all) {
    bool out = false;
    self->send(scheduler, drain_atom::value, cancel_all);
    sched.run();
    self->receive([&](bool drained) { out = drained; });
    return out;
  }

  // Lets time pass and fires the scheduler's tick.
  void tick_after(std::chrono::milliseconds d) {
    clock.advance(d);
    sched.trigger_timeouts();
    sched.run();
  }
};

}  // namespace

CAF_TEST_FIXTURE_SCOPE(scheduler_actor_tests, fixture)

CAF_TEST(a request starts on a free worker and the next waits for its slot) {
  auto first = submit("r1");
  auto second = submit("r2");
  CAF_REQUIRE_EQUAL(log_a.starts.size(), 1u);
  CAF_CHECK(log_a.starts[0].request == first);
  CAF_CHECK_EQUAL(log_a.starts[0].model, "m");
  CAF_CHECK_EQUAL(snapshot().queued[1] + 0, 1u);
  finish(first);
  CAF_REQUIRE_EQUAL(log_a.starts.size(), 2u);
  CAF_CHECK(log_a.starts[1].request == second);
  CAF_CHECK_EQUAL(clients["r1"]->result()->text, "ok");
  CAF_CHECK_EQUAL(metrics.requests(priority_class::interactive, request_outcome::completed), 1u);
}

CAF_TEST(a full queue and an unknown model are refused with typed errors) {
  submit("running");
  submit("q1");
  submit("q2");
  submit("q3");  // queue_max 2 for interactive: refused
  const auto* e = clients["q3"]->error();
  CAF_REQUIRE(e != nullptr);
  CAF_CHECK(e->code == error_code::overloaded);
  CAF_CHECK_GREATER_OR_EQUAL(e->retry_after_ms, 50u);
  CAF_CHECK_EQUAL(e->request_id, "q3");
  submit("other", priority_class::interactive, 0, "nope");
  CAF_REQUIRE(clients["other"]->error() != nullptr);
  CAF_CHECK(clients["other"]->error()->code == error_code::unknown_model);
  CAF_CHECK_EQUAL(log_a.starts.size(), 1u);
  CAF_CHECK_EQUAL(metrics.requests(priority_class::interactive, request_outcome::overloaded), 1u);
  // The node keeps serving: once the running one ends, the queue moves and admits again.
  finish(log_a.starts[0].request);
  submit("q4");
  CAF_CHECK(clients["q4"]->done == std::nullopt);
  CAF_CHECK_EQUAL(snapshot().queued[1] + 0, 2u);
}

CAF_TEST(a duplicate in - flight request id is refused) {
  submit("dup");
  submit("dup");
  CAF_REQUIRE(clients["dup"]->error() != nullptr);
  CAF_CHECK(clients["dup"]->error()->code == error_code::invalid_argument);
  CAF_CHECK_EQUAL(log_a.starts.size(), 1u);
}

CAF_TEST(a queued request past its deadline ends with deadline_exceeded on the tick) {
  submit("busy");
  auto late = submit("late", priority_class::interactive, 100);
  tick_after(std::chrono::milliseconds{50});
  CAF_CHECK(clients["late"]->done == std::nullopt);
  tick_after(std::chrono::milliseconds{60});
  CAF_REQUIRE(clients["late"]->error() != nullptr);
  CAF_CHECK(clients["late"]->error()->code == error_code::deadline_exceeded);
  CAF_CHECK_EQUAL(snapshot().queued[1] + 0, 0u);
  // The running request's deadline is its worker's business: it gets the absolute deadline.
  CAF_CHECK_EQUAL(log_a.starts[0].request->deadline.count(),
                  std::chrono::nanoseconds{std::chrono::milliseconds{1005000}}.count());
  finish(log_a.starts[0].request);
  CAF_CHECK_EQUAL(log_a.starts.size(), 1u);  // the expired one never starts
}

CAF_TEST(production preempts a running batch request which resumes afterwards) {
  auto batch = submit("batch", priority_class::batch);
  CAF_REQUIRE_EQUAL(log_a.starts.size(), 1u);
  auto prod = submit("prod", priority_class::production);
  CAF_CHECK(batch->preempt_pending());
  // Production does not wait for the confirmation: its start is already on the way.
  CAF_REQUIRE_EQUAL(log_a.starts.size(), 2u);
  CAF_CHECK(log_a.starts[1].request == prod);
  // The worker stops the batch request, keeping its tokens in the request.
  CAF_CHECK(batch->take_preempt());
  batch->generated = {5, 6};
  self->send(scheduler, preempted_atom::value, batch->ticket);
  sched.run();
  CAF_CHECK_EQUAL(snapshot().queued[2] + 0, 1u);
  CAF_CHECK_EQUAL(log_a.starts.size(), 2u);
  finish(prod);
  CAF_REQUIRE_EQUAL(log_a.starts.size(), 3u);
  CAF_CHECK(log_a.starts[2].request == batch);  // the same request: its stream continues
  CAF_CHECK_EQUAL(log_a.starts[2].request->generated.size(), 2u);
  finish(batch);
  CAF_CHECK(clients["batch"]->result() != nullptr);
  CAF_CHECK(clients["prod"]->result() != nullptr);
}

CAF_TEST(a batch request that finishes before its preemption lands is not run again) {
  auto batch = submit("batch", priority_class::batch);
  auto prod = submit("prod", priority_class::production);
  CAF_CHECK(batch->preempt_pending());
  finish(batch);  // the worker ended it in the step before it saw the flag
  finish(prod);
  CAF_CHECK_EQUAL(log_a.starts.size(), 2u);
  CAF_CHECK_EQUAL(clients["batch"]->done_calls, 1);
  const auto s = snapshot();
  CAF_CHECK_EQUAL(s.queued[2], 0u);
  CAF_CHECK_EQUAL(s.in_flight, 0u);
}

CAF_TEST(a restart decided while a preemption is unconfirmed waits for the confirmation) {
  // Two slots: production takes one batch request's slot; when production ends before the
  // worker confirms the preemption, the batch request gets a slot back but must not start
  // until the worker has let go of it.
  auto batch1 = submit("b1", priority_class::batch);
  CAF_REQUIRE_EQUAL(log_a.starts.size(), 1u);
  auto prod = submit("prod", priority_class::production);
  CAF_CHECK(batch1->preempt_pending());
  finish(prod);
  CAF_CHECK_EQUAL(log_a.starts.size(), 2u);  // no second start of b1 yet
  CAF_CHECK(batch1->take_preempt());
  self->send(scheduler, preempted_atom::value, batch1->ticket);
  sched.run();
  CAF_REQUIRE_EQUAL(log_a.starts.size(), 3u);
  CAF_CHECK(log_a.starts[2].request == batch1);
}

CAF_TEST(cancel ends a queued request at once and asks the worker to stop a running one) {
  auto running = submit("running");
  auto queued = submit("queued");
  self->send(scheduler, cancel_atom::value, std::string{"queued"});
  sched.run();
  CAF_REQUIRE(clients["queued"]->result() != nullptr);
  CAF_CHECK(clients["queued"]->result()->reason == finish_reason::cancelled);
  self->send(scheduler, cancel_atom::value, std::string{"running"});
  sched.run();
  CAF_CHECK(running->stop_requested() == stop_reason::cancelled);
  CAF_CHECK(clients["running"]->done == std::nullopt);  // the worker owes it
  finish(running);
  CAF_CHECK_EQUAL(snapshot().in_flight + 0, 0u);
  self->send(scheduler, cancel_atom::value, std::string{"never-seen"});
  sched.run();
  CAF_CHECK_EQUAL(log_a.starts.size(), 1u);
}

CAF_TEST(drain refuses new work and cancelling drain empties the queue) {
  auto running = submit("running");
  submit("queued");
  CAF_CHECK(!drain(false));
  submit("after");
  CAF_REQUIRE(clients["after"]->error() != nullptr);
  CAF_CHECK(clients["after"]->error()->code == error_code::overloaded);
  CAF_CHECK(!drain(true));
  CAF_REQUIRE(clients["queued"]->error() != nullptr);
  CAF_CHECK(clients["queued"]->error()->code == error_code::cancelled);
  CAF_CHECK(running->stop_requested() == stop_reason::draining);
  finish(running);
  CAF_CHECK(drain(false));
  CAF_CHECK(snapshot().drained);
}

CAF_TEST(an unhealthy worker gets no new work) {
  self->send(scheduler, health_atom::value, std::string{"a"}, false, std::string{"device lost"});
  sched.run();
  submit("r");
  CAF_CHECK_EQUAL(log_a.starts.size(), 0u);
  self->send(scheduler, health_atom::value, std::string{"a"}, true, std::string{});
  sched.run();
  CAF_CHECK_EQUAL(log_a.starts.size(), 1u);
}

CAF_TEST(a request its failing worker hands back runs again on a healthy worker) {
  worker_log log_b;
  auto worker_b = sys.spawn(scripted_worker, &log_b);
  scheduling::worker_state w;
  w.id = "b";
  w.models = {"m"};
  w.slots = 1;
  self->send(scheduler, register_atom::value, worker_registration{w, worker_b});
  sched.run();
  auto r = submit("r");
  CAF_REQUIRE_EQUAL(log_a.starts.size(), 1u);
  // Worker a's step failed: it reports itself unhealthy, then hands the request back.
  r->generated = {7};
  self->send(scheduler, health_atom::value, std::string{"a"}, false, std::string{"step failed"});
  self->send(scheduler, preempted_atom::value, r->ticket);
  sched.run();
  CAF_REQUIRE_EQUAL(log_b.starts.size(), 1u);
  CAF_CHECK(log_b.starts[0].request == r);
  CAF_CHECK_EQUAL(log_a.starts.size(), 1u);
  finish(r);
  CAF_CHECK_EQUAL(snapshot().in_flight + 0, 0u);
  CAF_CHECK_EQUAL(clients["r"]->done_calls, 1);
  caf::anon_send_exit(worker_b, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST(requests that arrive together share one pass and start in priority order) {
  const auto passes_before = snapshot().passes;
  // Batch first, production last, all in the mailbox before the scheduler runs: one slot.
  auto batch = send_submit("b", priority_class::batch);
  auto inter = send_submit("i", priority_class::interactive);
  auto prod = send_submit("p", priority_class::production);
  sched.run();
  CAF_CHECK_EQUAL(snapshot().passes, passes_before + 1);
  // Production got the slot; the batch request never started, so nothing was preempted.
  CAF_REQUIRE_EQUAL(log_a.starts.size(), 1u);
  CAF_CHECK(log_a.starts[0].request == prod);
  CAF_CHECK(!batch->preempt_pending());
  finish(prod);
  CAF_REQUIRE_EQUAL(log_a.starts.size(), 2u);
  CAF_CHECK(log_a.starts[1].request == inter);  // interactive before batch
  finish(inter);
  CAF_REQUIRE_EQUAL(log_a.starts.size(), 3u);
  CAF_CHECK(log_a.starts[2].request == batch);
}

CAF_TEST(a pass never starts a queued request whose deadline has passed) {
  auto busy = submit("busy");
  submit("late", priority_class::interactive, 100);
  // Time passes without the tick firing; the slot frees: the pass expires, it does not start.
  clock.advance(std::chrono::milliseconds{150});
  finish(busy);
  CAF_CHECK_EQUAL(log_a.starts.size(), 1u);
  CAF_REQUIRE(clients["late"]->error() != nullptr);
  CAF_CHECK(clients["late"]->error()->code == error_code::deadline_exceeded);
  CAF_CHECK_EQUAL(metrics.requests(priority_class::interactive, request_outcome::deadline), 1u);
  CAF_CHECK_EQUAL(snapshot().in_flight + 0, 0u);
}

CAF_TEST(a mailbox that never empties still gets a pass every pass_coalesce_max messages) {
  send_submit("r");
  for (int i = 0; i < 4; ++i) self->send(scheduler, cancel_atom::value, std::string{"unknown"});
  // Runs one scheduler message, then lets the worker take whatever the scheduler sent it.
  auto one_message = [&] {
    CAF_REQUIRE(sched.prioritize(scheduler));
    sched.run_once();
    if (sched.prioritize(worker_a)) sched.run_once();
  };
  one_message();  // the submit: a pass is due, four messages wait
  one_message();
  CAF_CHECK_EQUAL(log_a.starts.size(), 0u);
  one_message();  // the third message since: the bound (3) runs the pass
  CAF_CHECK_EQUAL(log_a.starts.size(), 1u);
  sched.run();
  CAF_CHECK_EQUAL(log_a.starts.size(), 1u);
}

CAF_TEST(one batch of finished reports frees every slot and the starts go in one message) {
  scheduling::worker_state w;
  w.id = "a";
  w.models = {"m"};
  w.slots = 3;
  self->send(scheduler, register_atom::value, worker_registration{w, worker_a});
  sched.run();
  auto r1 = submit("r1");
  auto r2 = submit("r2");
  auto r3 = submit("r3");
  submit("q1");
  submit("q2");
  CAF_REQUIRE_EQUAL(log_a.starts.size(), 3u);
  const auto messages_before = log_a.start_messages;
  for (const auto& r : {r1, r2})
    r->complete(gateway::final_result{"x", finish_reason::stop, {1, 1}, "m", "prod", 0},
                request_outcome::completed);
  self->send(scheduler, finished_atom::value,
             std::vector<finished_report>{{r1->ticket, 1000}, {r2->ticket, 1000}, {999999, 1}});
  sched.run();
  CAF_REQUIRE_EQUAL(log_a.starts.size(), 5u);
  CAF_CHECK_EQUAL(log_a.start_messages, messages_before + 1);
  CAF_CHECK_EQUAL(snapshot().in_flight + 0, 3u);
  CAF_CHECK_EQUAL(metrics.requests(priority_class::interactive, request_outcome::completed), 2u);
  finish(r3);
}

CAF_TEST_FIXTURE_SCOPE_END()
