#pragma once
// scheduler_actor: one site's admission and dispatch (DESIGN.md §4). It owns the pure
// scheduler_policy (bounded class queues, capacity windows, routing with GPU -> CPU -> fallback
// model, preemption) and turns its decisions into messages: start to a worker, the preempt or
// stop flag on a running request. It maps refusals onto the gateway's typed errors, enforces
// deadlines of queued requests on a periodic tick (running ones are stopped by their worker),
// cancels on the port's word, and drains.
//
// Per request, the actor keeps the phase the worker side is in: queued, running on a worker,
// or preempting (the worker was told to stop it and has not confirmed yet; a restart the policy
// decides meanwhile waits for the confirmation, so a request never runs twice at once).
//
// Scheduling passes are coalesced: a message that changes what could run (a submit, a finished
// or preempted report, a health change, a tick) only marks a pass as due, and the pass runs
// once the mailbox is empty, or after `pass_coalesce_max` messages when it never empties. So
// requests that arrive together are placed together, in priority order, and reach each worker
// in one start message. A pass reads the clocks once: it expires queued requests past their
// deadline (never starting one), then applies the policy. Snapshot and drain run a due pass
// first, so they never see work that is only waiting for one.

#include "actors/scheduling/scheduler_policy.hpp"
#include "actors/serving/served_request.hpp"
#include "actors/serving/serving_atoms.hpp"
#include "actors/serving/serving_metrics.hpp"
#include "actors/worker/worker_actor.hpp"
#include "runtime/clock/clock.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace bastion::serving {

struct scheduler_settings {
  scheduling::policy_config policy;
  std::chrono::milliseconds deadline_default{60000};  // for requests that give none
  std::chrono::milliseconds tick{10};  // how often queued deadlines and windows are checked
  std::chrono::minutes utc_offset{0};  // local time of the capacity windows
  // The most messages handled while a pass is due before it runs anyway (a mailbox that never
  // empties under load must not starve placement).
  std::uint32_t pass_coalesce_max = 64;
};

/// A worker joining the scheduler: what the policy routes by, and where to send its work.
struct worker_registration {
  scheduling::worker_state state;
  worker_actor handle;
};

struct scheduler_snapshot {
  std::vector<std::uint64_t> queued;   // per priority class, production first
  std::vector<std::uint64_t> running;  // per priority class
  std::uint64_t in_flight = 0;         // requests admitted and not yet ended
  std::string capacity_window;
  bool draining = false;
  bool drained = false;      // draining and nothing left
  std::uint64_t passes = 0;  // scheduling passes run so far
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, scheduler_snapshot& x) {
  return f(caf::meta::type_name("bastion.scheduler_snapshot"), x.queued, x.running, x.in_flight,
           x.capacity_window, x.draining, x.drained, x.passes);
}

/// The scheduler's typed interface.
///   submit:    admit a request (ends it at once with a typed error when refused).
///   cancel:    the client is gone; by request id; unknown ids are ignored.
///   register:  add or replace a worker.
///   finished:  from a worker: the request ended there (ticket, service time in ns), or a batch
///              of such reports.
///   preempted: from a worker: the request stopped early, asked to or because its step failed
///              there, and runs again (its tokens kept) where the policy places it.
///   health:    from a worker: (worker id, healthy, reason).
///   tick:      the periodic timer (self-sent).
///   drain:     refuse new requests; with `true`, also cancel everything queued and running.
///              Replies whether nothing is left.
///   snapshot:  queue depths and running counts.
using scheduler_actor =
    caf::typed_actor<caf::reacts_to<submit_atom, served_request_ptr>,
                     caf::reacts_to<cancel_atom, std::string>,
                     caf::reacts_to<register_atom, worker_registration>,
                     caf::reacts_to<finished_atom, std::uint64_t, std::int64_t>,
                     caf::reacts_to<finished_atom, std::vector<finished_report>>,
                     caf::reacts_to<preempted_atom, std::uint64_t>,
                     caf::reacts_to<health_atom, std::string, bool, std::string>,
                     caf::reacts_to<tick_atom>, caf::replies_to<drain_atom, bool>::with<bool>,
                     caf::replies_to<snapshot_atom>::with<scheduler_snapshot>>;

struct scheduler_state {
  static inline const char* name = "bastion.scheduler";

  enum class phase : std::uint8_t { queued, running, preempting };
  struct entry {
    served_request_ptr request;
    phase at = phase::queued;
    std::optional<scheduling::dispatch> restart;  // preempting: where to run it next
    bool dequeued = false;                        // preempting: already out of the queue
  };

  scheduler_settings settings;
  const clock_source* clock = nullptr;
  serving_metrics* metrics = nullptr;
  std::unique_ptr<scheduling::scheduler_policy> policy;
  std::map<std::string, worker_actor> workers;
  // Node memory of the two maps below: every request adds a node to each and removes it when it
  // ends, and the pool reuses those nodes instead of a malloc and a free each. It holds at most
  // as many nodes as were ever in flight at once (bounded by the queues and the workers' slots).
  std::pmr::unsynchronized_pool_resource request_nodes;
  std::pmr::unordered_map<std::uint64_t, entry> requests{&request_nodes};  // by ticket
  // request id -> ticket; each key views the id inside its entry's request (which the entry
  // keeps alive), so admitting a request copies no id.
  std::pmr::unordered_map<std::string_view, std::uint64_t> tickets_by_request{&request_nodes};
  std::uint64_t next_ticket = 1;
  bool tick_armed = false;
  bool draining = false;
  bool pass_due = false;                 // a message changed what could run; no pass since
  std::uint32_t messages_since_due = 0;  // handled while pass_due, bounded by pass_coalesce_max
  std::uint64_t passes = 0;
};

/// Spawn with `sys.spawn(scheduler_actor_impl, settings, &clock, metrics)`. `clock` (and
/// `metrics` when not null) must outlive the actor.
scheduler_actor::behavior_type scheduler_actor_impl(
    scheduler_actor::stateful_pointer<scheduler_state> self, scheduler_settings settings,
    const clock_source* clock, serving_metrics* metrics);

}  // namespace bastion::serving

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bastion::serving::served_request_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bastion::serving::worker_registration)
