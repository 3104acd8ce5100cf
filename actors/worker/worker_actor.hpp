#pragma once
// worker_actor: a worker's face in the actor system (DESIGN.md §3, §4). It takes start
// messages from the scheduler and hands them to its step thread (worker_step_loop), which runs
// the model and reports each request back to the scheduler as finished or preempted. The actor
// itself never runs a model step, so it never blocks a CAF scheduler thread.
//
// Stopping and preempting a running request are not messages: the scheduler sets the
// request's atomic flags (served_request), and the step thread acts on them between steps.

#include "actors/serving/local_serving.hpp"
#include "actors/serving/served_request.hpp"
#include "actors/serving/serving_atoms.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <memory>
#include <string>
#include <vector>

namespace bastion::worker {
class worker_step_loop;
}

namespace bastion::serving {

/// One request for a worker: run `request` on `model` (the requested model or its fallback).
struct work_item {
  served_request_ptr request;
  std::string model;
  bool fallback_model = false;
};

/// What one scheduling pass starts on one worker: one message however many requests it starts.
struct work_batch {
  std::vector<work_item> items;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, worker_snapshot& x) {
  return f(caf::meta::type_name("bastion.worker_snapshot"), x.id, x.kind, x.backend, x.threads,
           x.models, x.healthy, x.running, x.waiting, x.kv_blocks_used, x.kv_blocks_total, x.steps,
           x.max_step_sequences);
}

/// The worker's typed interface.
///   start:    run the items; for each, the scheduler hears back exactly once (finished or
///             preempted).
///   snapshot: queue, running sequences and KV use as of the latest step.
using worker_actor = caf::typed_actor<caf::reacts_to<start_atom, work_batch>,
                                      caf::replies_to<snapshot_atom>::with<worker_snapshot>>;

struct worker_actor_state {
  static inline const char* name = "bastion.worker";
  std::shared_ptr<worker::worker_step_loop> loop;
  caf::actor scheduler;  // told `finished` for items the step thread could not take
};

/// Spawn with `sys.spawn(worker_actor_impl, loop, scheduler)`. The loop is shared with its
/// owner (local_serving), which stops it; after that, starts are refused as finished.
worker_actor::behavior_type worker_actor_impl(
    worker_actor::stateful_pointer<worker_actor_state> self,
    std::shared_ptr<worker::worker_step_loop> loop, caf::actor scheduler);

}  // namespace bastion::serving

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bastion::serving::work_item)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bastion::serving::work_batch)
