#pragma once
// The serving metrics (DESIGN.md §7), created once at start so that the hot paths only touch
// lock-free counters, gauges and histograms: requests by class and outcome, queue depth and
// running requests by class, the latencies of answers by class (time to first token, time per
// output token, end to end), and per worker tokens generated, steps, sequences per step and
// KV blocks.
//
// Every series is made in the constructors; the registry must outlive these handles.

#include "actors/scheduling/capacity_policy.hpp"
#include "runtime/metrics/registry.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace bastion::serving {

/// How a request ended, as counted in bastion_serving_requests_total{outcome}.
enum class request_outcome : std::uint8_t {
  completed,        // a final result (stop or length)
  cancelled,        // the client or the server cancelled it
  deadline,         // its deadline passed, queued or running
  overloaded,       // refused at admission (queue full or draining)
  unknown_model,    // refused at admission
  invalid,          // bad input found by the worker (untokenizable, bad token ids, ...)
  failed,           // a backend or internal error
  prompt_too_long,  // refused by the worker: the prompt leaves no room in the model's context
};
constexpr std::size_t outcome_count = 8;
const char* to_string(request_outcome o) noexcept;

class serving_metrics {
 public:
  explicit serving_metrics(metrics::registry& reg);

  void count(scheduling::priority_class c, request_outcome o) noexcept {
    requests_[static_cast<std::size_t>(c)][static_cast<std::size_t>(o)]->inc();
  }
  void set_queued(scheduling::priority_class c, std::size_t n) noexcept {
    queued_[static_cast<std::size_t>(c)]->set(static_cast<double>(n));
  }
  void set_running(scheduling::priority_class c, std::size_t n) noexcept {
    running_[static_cast<std::size_t>(c)]->set(static_cast<double>(n));
  }
  std::uint64_t requests(scheduling::priority_class c, request_outcome o) const noexcept {
    return requests_[static_cast<std::size_t>(c)][static_cast<std::size_t>(o)]->value();
  }
  /// An answer's latencies in seconds, from admission: to its first token (none when it had
  /// none), per output token after the first (needs two or more), and to its completion.
  void observe_answer(scheduling::priority_class c, std::optional<double> ttft_s,
                      std::optional<double> tpot_s, double e2e_s) noexcept {
    const auto i = static_cast<std::size_t>(c);
    if (ttft_s) ttft_[i]->observe(*ttft_s);
    if (tpot_s) tpot_[i]->observe(*tpot_s);
    e2e_[i]->observe(e2e_s);
  }

  metrics::registry& registry() noexcept { return reg_; }

 private:
  metrics::registry& reg_;
  std::array<std::array<metrics::counter*, outcome_count>, scheduling::class_count> requests_{};
  std::array<metrics::gauge*, scheduling::class_count> queued_{};
  std::array<metrics::gauge*, scheduling::class_count> running_{};
  std::array<metrics::histogram*, scheduling::class_count> ttft_{}, tpot_{}, e2e_{};
};

/// One worker's series, labelled worker="<id>" (and model="<id>" for KV blocks).
struct worker_metrics {
  worker_metrics(metrics::registry& reg, const std::string& worker);
  metrics::counter* tokens_generated = nullptr;
  metrics::counter* steps = nullptr;
  metrics::gauge* step_sequences = nullptr;      // sequences in the latest step
  metrics::gauge* step_sequences_max = nullptr;  // the most one step has carried
  metrics::gauge* kv_blocks_used = nullptr;      // over all of the worker's models
  metrics::gauge* kv_blocks_total = nullptr;
  metrics::gauge* healthy = nullptr;
  metrics::counter* recovery_probes = nullptr;  // canaries run while unhealthy
  metrics::counter* recoveries = nullptr;       // returns to healthy after a failing step
  metrics::counter* group_rebuilds = nullptr;   // tensor-parallel groups made again
  metrics::counter* step_stalls = nullptr;      // device calls given up on (step_stall_ms)
  // How a device backend's tokens were picked without rows of logits (kernels::runner_stats):
  // drawn from the candidates it sent, rows brought back because a draw needed them, and
  // rows whose repetition penalty it applied. All 0 on a CPU worker.
  metrics::counter* candidate_draws = nullptr;
  metrics::counter* logit_rows_downloaded = nullptr;
  metrics::counter* penalised_rows = nullptr;
};

}  // namespace bastion::serving
