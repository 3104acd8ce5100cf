#pragma once
// One request in flight inside a node, shared by the port, the scheduler actor and the worker
// that runs it (DESIGN.md §4). It carries the client's callbacks and guarantees the port's
// contract: tokens only before the one completion, nothing after it, whichever thread ends it
// (the scheduler for a queued request, a worker's step thread for a running one).
//
// Ownership of the mutable progress fields (prompt_ids, generated, text, carry_text) passes with
// the request: the scheduler hands it to one worker at a time in a message, and a worker hands
// it back (preempted/finished report) before another may touch it. The stop and preempt flags
// are atomics that the scheduler sets and the running worker polls between steps.
//
// Never crosses a process boundary: passed between actors as a shared pointer.

#include "actors/gateway/inference_port.hpp"
#include "actors/serving/serving_metrics.hpp"

#include <caf/meta/type_name.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace bastion::serving {

/// Why the scheduler asks a worker to stop a request (the worker ends it with this reason).
enum class stop_reason : std::uint8_t { none, cancelled, deadline, draining };

class served_request {
 public:
  /// `deadline` is monotonic (clock_source::monotonic()); zero means none. `metrics` may be
  /// null (tests) and must outlive the request otherwise.
  served_request(gateway::inference_request request, gateway::token_callback on_token,
                 gateway::completion_callback on_done, std::string site,
                 serving_metrics* metrics = nullptr);
  /// A request dropped without a completion (its actor stopped first) still owes the client
  /// one: it gets a cancelled error here.
  ~served_request();
  served_request(const served_request&) = delete;
  served_request& operator=(const served_request&) = delete;

  const gateway::inference_request& request() const noexcept { return request_; }
  const std::string& site() const noexcept { return site_; }

  /// Streams one token to the client (only when it asked for a stream). Dropped after the
  /// completion. The first one (streamed or not) marks the time to first token. Thread-safe.
  void emit_token(gateway::token_event event);

  /// Ends the request: the first call delivers `outcome` and returns true, later calls do
  /// nothing and return false. Thread-safe.
  bool complete(gateway::completion outcome, request_outcome counted_as);
  /// Helpers for the common endings. finish(): an answer built from the request's own progress
  /// (its text so far, usage from prompt_ids and generated, its site), served by `model`.
  bool finish(gateway::finish_reason why, const std::string& model, request_outcome counted_as);
  bool fail(gateway::error_code code, std::string message, request_outcome counted_as,
            std::uint32_t retry_after_ms = 0);
  bool completed() const noexcept { return completed_.load(std::memory_order_acquire); }

  void request_stop(stop_reason why) noexcept {
    stop_.store(static_cast<std::uint8_t>(why), std::memory_order_release);
  }
  stop_reason stop_requested() const noexcept {
    return static_cast<stop_reason>(stop_.load(std::memory_order_acquire));
  }
  void request_preempt() noexcept { preempt_.store(true, std::memory_order_release); }
  /// Takes the preempt request (clears it): true when one was pending.
  bool take_preempt() noexcept { return preempt_.exchange(false, std::memory_order_acq_rel); }
  bool preempt_pending() const noexcept { return preempt_.load(std::memory_order_acquire); }

  // Set by the scheduler before the request reaches any worker.
  std::uint64_t ticket = 0;
  std::chrono::nanoseconds deadline{0};  // monotonic; 0 = none

  // Progress, owned by whoever holds the request now (see the file comment).
  std::vector<std::int32_t> prompt_ids;  // the encoded input; empty until a worker encodes it
  std::string encoded_for;               // the model whose tokenizer made prompt_ids and generated
  std::vector<std::int32_t> generated;   // every token generated so far, across preemptions
  std::string text;                      // the completion text released so far
  std::string carry_text;  // text held back at a preemption, released with the next token
  std::uint32_t preemptions = 0;
  std::uint32_t failovers = 0;  // times a failing worker handed it back

 private:
  /// Counts an answer's latencies (complete(), `tokens` its completion tokens).
  void observe_latencies(std::uint32_t tokens);

  gateway::inference_request request_;
  gateway::token_callback on_token_;
  gateway::completion_callback on_done_;
  std::string site_;
  serving_metrics* metrics_;
  // For the latency histograms: admission, and the first token's time after it (0: none yet).
  std::chrono::steady_clock::time_point admitted_ = std::chrono::steady_clock::now();
  std::atomic<std::int64_t> first_token_ns_{0};
  std::mutex mutex_;  // orders emit_token against complete
  std::atomic<bool> completed_{false};
  std::atomic<std::uint8_t> stop_{0};
  std::atomic<bool> preempt_{false};
};

using served_request_ptr = std::shared_ptr<served_request>;

/// A worker's word that a request ended there (completed: result, error, cancellation or
/// deadline): its ticket and how long it ran, in ns. Workers send these in batches (one message
/// per step-loop iteration), so a step that ends many requests costs the scheduler one message.
struct finished_report {
  std::uint64_t ticket = 0;
  std::int64_t service_ns = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, finished_report& x) {
  return f(caf::meta::type_name("bastion.finished_report"), x.ticket, x.service_ns);
}

}  // namespace bastion::serving
