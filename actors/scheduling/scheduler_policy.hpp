#pragma once
// The scheduler's decisions, without CAF: bounded queues per priority class, the capacity
// policy of the time windows, routing by model and worker kind (GPU first, CPU workers of the
// same model when no GPU worker is healthy, then a configured fallback model), preemption of
// lower classes when production waits, deadlines and overload. The scheduler actor owns one
// and turns its decisions into messages; tests drive it directly with explicit time.
//
// Not thread-safe: owned by one actor.

#include "actors/scheduling/capacity_policy.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory_resource>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace bastion::scheduling {

enum class worker_kind : std::uint8_t { gpu, cpu, edge };
const char* to_string(worker_kind k) noexcept;

struct worker_state {
  std::string id;
  worker_kind kind = worker_kind::cpu;
  std::vector<std::string> models;  // model ids it has loaded
  std::size_t slots = 1;            // sequences it runs at once (its batch capacity)
  bool healthy = true;
};

struct request_ticket {
  std::uint64_t id = 0;
  std::string model;
  priority_class cls = priority_class::interactive;
  std::chrono::nanoseconds deadline{0};  // monotonic; 0 = none
  bool edge = false;                     // latency-critical: route to edge workers
};

enum class admit_code : std::uint8_t { admitted, overloaded, unknown_model, draining };

struct admit_result {
  admit_code code = admit_code::admitted;
  std::uint32_t retry_after_ms = 0;  // with overloaded
  std::string message;               // for the person reading the error
};

struct dispatch {
  std::uint64_t request = 0;
  std::string worker;
  std::string model;            // the model to run: the requested one or its fallback
  bool fallback_model = false;  // true when `model` is the configured fallback
};

struct preemption {
  std::uint64_t request = 0;  // requeued at the front of its class; the worker must stop it
  std::string worker;
};

struct decisions {
  std::vector<preemption> preempts;  // apply before starts: they free the slots starts use
  std::vector<dispatch> starts;
};

struct policy_config {
  std::array<std::size_t, class_count> queue_max{256, 256, 1024, 1024};
  std::map<std::string, std::string> fallback_model;  // model -> model to use instead
  std::chrono::milliseconds retry_after_min{50};
  std::chrono::milliseconds retry_after_max{30000};
  capacity_policy capacity;
};

class scheduler_policy {
 public:
  explicit scheduler_policy(policy_config cfg);

  /// Adds or replaces a worker; requests running on it stay accounted to it.
  void upsert_worker(worker_state w);
  void set_health(const std::string& worker, bool healthy);
  /// Removes a worker and returns the requests that were running on it (the caller fails or
  /// resubmits them).
  std::vector<std::uint64_t> remove_worker(const std::string& worker);

  /// Queues the request or refuses it (queue of its class full, model unknown, draining).
  admit_result admit(request_ticket t);

  /// What to start (and preempt) now, given the local time for the capacity windows.
  decisions schedule(local_time now);

  /// A running request ended (finished, failed or cancelled at the worker): frees its slot.
  /// `service_time` feeds the retry-after estimate.
  void finished(std::uint64_t request, std::chrono::nanoseconds service_time);

  enum class cancel_outcome : std::uint8_t { not_found, dequeued, running };
  /// Removes a queued request, or reports the worker a running one is on (the caller tells the
  /// worker, which later reports finished()).
  cancel_outcome cancel(std::uint64_t request, std::string* worker = nullptr);

  /// Dequeues every queued request whose deadline has passed.
  std::vector<std::uint64_t> expire(std::chrono::nanoseconds now);

  /// Refuses new requests from now on; queued and running ones continue.
  void start_drain() noexcept { draining_ = true; }
  bool drained() const noexcept { return queued_total() == 0 && running_.empty(); }

  std::size_t queued(priority_class c) const noexcept {
    return queues_[static_cast<std::size_t>(c)].size();
  }
  std::size_t queued_total() const noexcept;
  std::size_t running(priority_class c) const noexcept {
    return running_by_class_[static_cast<std::size_t>(c)];
  }
  std::size_t total_slots() const noexcept;
  const std::string& window_name(local_time t) const { return cfg_.capacity.window_name_at(t); }

 private:
  /// A worker and the requests running on it. Kept in a std::map, whose nodes never move, so
  /// running entries point at their worker's record instead of looking it up by name.
  struct worker_record {
    worker_state state;
    std::size_t running = 0;
  };
  struct running_entry {
    worker_record* worker = nullptr;
    request_ticket ticket;
    std::uint64_t start_seq = 0;
  };

  static bool serves(const worker_state& w, const std::string& model);
  /// Where a request may run: healthy workers of one kind that have `model`, which is the
  /// requested model or its configured fallback. Found without allocating (placement runs for
  /// every queued request on every pass).
  struct route {
    bool any = false;
    worker_kind kind = worker_kind::cpu;
    const std::string* model = nullptr;
    bool fallback = false;
    bool admits(const worker_state& w) const;
  };
  /// The tier a request for `model` goes to: edge workers first for edge requests, then GPU
  /// workers when any healthy one has the model, else CPU workers. `any` false: none.
  route tier_for(const request_ticket& t, const std::string& model) const;
  /// The tier for the requested model, else for its configured fallback.
  route route_for(const request_ticket& t) const;
  /// The least loaded worker of route `r` with a free slot; null when none.
  worker_record* place(const route& r);
  /// For a production ticket that cannot be placed: the lowest-class, most recently started
  /// running request on one of its target workers.
  std::optional<std::uint64_t> victim_for(const request_ticket& t, const route& r) const;
  /// Accounts `t` as running on `w` (taking the ticket) and returns what to tell the actor.
  dispatch start(worker_record& w, const route& r, request_ticket&& t);
  std::uint32_t retry_after_ms(priority_class c) const;

  policy_config cfg_;
  std::map<std::string, worker_record> workers_;
  std::array<std::deque<request_ticket>, class_count> queues_;
  // No queued deadline passes before this (max: none queued). Lowered by every enqueue,
  // recomputed by expire()'s walk, so expire() walks the queues only when one may have passed:
  // the scheduler asks on every pass, and most passes have nothing to expire.
  std::chrono::nanoseconds next_expiry_ = std::chrono::nanoseconds::max();
  void enqueued(const request_ticket& t) noexcept {
    if (t.deadline.count() > 0) next_expiry_ = std::min(next_expiry_, t.deadline);
  }
  // Node memory of running_: requests start and end thousands of times a second, and the pool
  // reuses the nodes of ended ones instead of a malloc and a free each. It holds at most as many
  // nodes as were ever running at once (bounded by the workers' slots).
  std::pmr::unsynchronized_pool_resource running_nodes_;
  std::pmr::unordered_map<std::uint64_t, running_entry> running_{&running_nodes_};
  std::array<std::size_t, class_count> running_by_class_{};
  std::uint64_t next_start_seq_ = 0;
  double service_ms_ewma_ = 1000.0;
  bool draining_ = false;
};

}  // namespace bastion::scheduling
