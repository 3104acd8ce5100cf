#pragma once
// One site's serving machinery behind the gateway (DESIGN.md §4): the scheduler actor, the
// worker actors named in the config (each with its model bundles and a step thread), and the
// gateway::inference_port that joins them. bastion-node and the embedded API start one; the
// gateway (HTTP + RPC) and in-process callers both submit through port().
//
// Contract (the lead's; the implementation may add members but keeps these):
//   - start() loads every model of every worker named in the config before it returns, so a
//     node that starts is ready to answer; a model that fails to load is an error naming the
//     worker, the model id, the path and the reason.
//   - port() follows gateway/inference_port.hpp's threading contract; it stays valid until the
//     local_serving is destroyed.
//   - drain() refuses new requests (draining error), lets queued and running ones finish, and
//     returns true when all finished within `timeout`; the destructor drains with a zero
//     timeout (cancelling what is left) and stops every actor and step thread it started.

#include "actors/gateway/inference_port.hpp"
#include "runtime/config/node_config.hpp"

#include <caf/fwd.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bastion::metrics {
class registry;
}

namespace bastion::serving {

/// What one worker reports (for /metrics, health and tests).
struct worker_snapshot {
  std::string id;
  std::string kind;          // gpu | cpu | edge
  std::string backend;       // "cpu", "cuda:0", ...
  std::int64_t threads = 0;  // a CPU backend's compute threads as configured (0: one per core)
  std::vector<std::string> models;
  bool healthy = true;
  std::int64_t running = 0;  // sequences in the runner
  std::int64_t waiting = 0;  // queued inside the worker
  std::int64_t kv_blocks_used = 0;
  std::int64_t kv_blocks_total = 0;
  std::int64_t steps = 0;
  std::int64_t max_step_sequences = 0;  // the most sequences one step has carried
};

struct serving_snapshot {
  std::vector<worker_snapshot> workers;
  std::array<std::size_t, 4> queued{};  // per priority class, production first
  std::array<std::size_t, 4> running{};
  std::string capacity_window;  // the window in force now
};

class local_serving {
 public:
  /// Spawns the scheduler and the workers of `cfg` in `sys` and loads their models. `reg`
  /// receives the serving metrics and must outlive the result.
  static caf::expected<std::unique_ptr<local_serving>> start(caf::actor_system& sys,
                                                             const config::node_config& cfg,
                                                             metrics::registry& reg);
  virtual ~local_serving() = default;

  virtual gateway::inference_port& port() = 0;

  /// Blocks for at most `timeout` (a CAF request under the hood).
  virtual serving_snapshot snapshot(std::chrono::milliseconds timeout) = 0;

  virtual bool drain(std::chrono::milliseconds timeout) = 0;

  /// The scheduler actor, for the interop header and tests that speak CAF.
  virtual caf::actor scheduler() const = 0;
};

}  // namespace bastion::serving
