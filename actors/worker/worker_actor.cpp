#include "actors/worker/worker_actor.hpp"

#include "actors/worker/worker_step_loop.hpp"

#include <caf/send.hpp>

#include <vector>

namespace bastion::serving {

worker_actor::behavior_type worker_actor_impl(
    worker_actor::stateful_pointer<worker_actor_state> self,
    std::shared_ptr<worker::worker_step_loop> loop, caf::actor scheduler) {
  self->state.loop = std::move(loop);
  self->state.scheduler = std::move(scheduler);
  return {
      [self](start_atom, work_batch& batch) {
        auto& st = self->state;
        std::vector<finished_report> refused;
        for (auto& item : batch.items) {
          auto request = item.request;
          if (st.loop->submit(item.request, std::move(item.model))) continue;
          // The inbox bound is a bug catcher (the scheduler starts no more than the worker's
          // slots), and the loop refuses after stop: either way the request ends here.
          request->fail(gateway::error_code::overloaded,
                        "worker '" + st.loop->snapshot().id + "' cannot take more requests now",
                        request_outcome::overloaded, 1000);
          refused.push_back({request->ticket, 0});
        }
        if (!refused.empty())
          caf::anon_send(st.scheduler, finished_atom::value, std::move(refused));
      },
      [self](snapshot_atom) -> worker_snapshot { return self->state.loop->snapshot(); },
  };
}

}  // namespace bastion::serving
