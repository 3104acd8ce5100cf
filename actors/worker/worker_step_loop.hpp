#pragma once
// A worker's step thread (DESIGN.md §3): model steps run here, never on CAF's scheduler
// threads, so a long batched step cannot delay a heartbeat. It owns the worker's backend and
// its loaded models, one batch_runner (with its own decoder and paged KV cache) per model, and
// runs continuous batching: between steps it takes new requests from a bounded inbox and acts
// on the stop, preempt and deadline state of the requests it runs; then it steps every model
// that has work and streams the tokens straight to the requests' callbacks.
//
// Every request handed to submit() ends with exactly one report: finished (it was completed:
// result, error, cancellation or deadline) or preempted (it stopped early, its tokens kept in
// the request, for the scheduler to run it again). A backend error fails the requests of that
// step back to the scheduler (to continue on another worker from their tokens, at most
// failovers_max times, then with a typed error) and reports the worker unhealthy; it never ends
// the process. An unhealthy worker probes its backend with a canary after a doubling, capped
// backoff (worker_recovery.hpp) and reports itself healthy again when a probe passes; a
// tensor-parallel worker whose group was aborted (a rank failed or hung mid-step) first makes
// the group and its models' engines again (worker_backend::make_collectives).
//
// A device call that never returns (a hung kernel, a lost GPU) raises no error at all: a watch
// thread gives up on a call of the step thread that runs past step_stall_limit, hands its
// requests back to the scheduler and reports the worker unhealthy (worker_stall.hpp). A call
// that comes back after all has its results dropped, and the worker recovers by its probes.

#include "actors/serving/local_serving.hpp"
#include "actors/serving/served_request.hpp"
#include "actors/serving/serving_metrics.hpp"
#include "actors/worker/worker_backend.hpp"
#include "actors/worker/worker_recovery.hpp"
#include "actors/worker/worker_stall.hpp"
#include "kernels/backend.hpp"
#include "runtime/clock/clock.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bastion::worker {

/// Where the step thread reports to (the scheduler actor, in the node). Called on the step
/// thread; must not block. Finished reports are gathered over one iteration of the loop (take
/// the inbox, one step per model) and given in one call, so a step that ends many requests
/// costs one message; preempted and health reports go at once (the scheduler must hear that a
/// worker is unhealthy before it sees the requests it hands back).
struct worker_reports {
  std::function<void(std::vector<serving::finished_report> batch)> finished;
  std::function<void(std::uint64_t ticket)> preempted;
  std::function<void(bool healthy, const std::string& reason)> health;
};

struct worker_model_spec {
  std::string id;
  std::string path;
  std::int64_t context_tokens_max = 4096;  // the configured limit; the model's own may be less
};

struct step_loop_settings {
  std::string worker_id;
  std::string kind = "cpu";
  int threads = 0;  // the backend's compute threads, as configured (reported in snapshots)
  std::int64_t batch_max = 16;    // sequences per step (per model)
  std::int64_t kv_blocks = 1024;  // per model
  std::int64_t kv_block_tokens = 16;
  std::int64_t step_tokens_max = 512;
  std::size_t inbox_max = 256;      // requests handed over but not yet taken; more: refused
  std::uint32_t failovers_max = 2;  // a request a failing step hands back; more: it fails
  // After a failing step the worker is unhealthy; it probes its backend after this backoff,
  // doubling after each failed probe up to the cap, and is healthy again once a probe passes.
  std::chrono::milliseconds recovery_backoff{100};
  std::chrono::milliseconds recovery_backoff_max{10000};
  // A device call of the step thread (a step, a probe, making a tensor-parallel group) running
  // longer than this is given up on: its requests go to other workers and the worker is
  // unhealthy until the call returns and a probe passes. 0: never (no watch thread).
  std::chrono::milliseconds step_stall_limit{0};
};

class worker_step_loop {
 public:
  /// Loads every model (each file once) and starts the step thread. `backend.backend` may be
  /// null when the device could not be opened: the worker then starts unhealthy and fails what
  /// it is given with `backend.error`. A backend with other ranks runs each model split across
  /// them (kernels::tp_decoder). A model that fails to load is an error naming the worker,
  /// model, path and reason (returned in `error`, result null). `clock` and `metrics` must
  /// outlive the loop; `metrics` may be null.
  static std::unique_ptr<worker_step_loop> create(step_loop_settings settings,
                                                  const std::vector<worker_model_spec>& models,
                                                  worker_backend backend, const clock_source& clock,
                                                  worker_reports reports,
                                                  serving::worker_metrics* metrics,
                                                  std::string& error);
  ~worker_step_loop();  // stop()
  worker_step_loop(const worker_step_loop&) = delete;
  worker_step_loop& operator=(const worker_step_loop&) = delete;

  /// Hands a request to the step thread, to run on `model`. Returns false when the inbox is
  /// full or the loop has stopped: the caller still owns the request then. Thread-safe.
  bool submit(serving::served_request_ptr request, std::string model);

  /// Ends every request still here with a cancelled error ("shutting down"), reporting each
  /// finished, and joins the thread. Idempotent. Thread-safe (not from the step thread).
  void stop();

  /// Wakes the step and watch threads to read their clock again. An unhealthy worker sleeps until its next
  /// probe is due by the clock as it last read it (or until a stop or new work), which a clock
  /// that runs with real time honours by itself; a clock moved by hand (a test's manual_clock)
  /// does not, so whoever moves it calls this after each move. Thread-safe.
  void clock_moved();

  /// The latest published state (updated after every step). Thread-safe.
  serving::worker_snapshot snapshot() const;

  const std::vector<std::string>& model_ids() const noexcept { return model_ids_; }

 private:
  struct loaded_model;
  struct live_request;
  struct inbox_item {
    serving::served_request_ptr request;
    std::string model;
  };

  worker_step_loop(step_loop_settings settings, worker_backend backend, const clock_source& clock,
                   worker_reports reports, serving::worker_metrics* metrics);
  void run();
  void take(inbox_item item);
  void poll_flags();
  void step_model(loaded_model& m);
  /// Reports a request that stops here unfinished (preempted, or its step failed) so that the
  /// scheduler runs it again; its tokens stay in the request.
  void hand_back(live_request& lr);
  /// Ends a live or new request as completed elsewhere and reports it finished.
  void finished(const serving::served_request_ptr& r, std::chrono::nanoseconds started);
  void end_stopped(const serving::served_request_ptr& r, serving::stop_reason why,
                   const loaded_model* m);
  void publish();
  /// A step failed: unhealthy (told at once), the first probe due one backoff from now.
  void became_unhealthy(const std::string& why);
  /// Runs the canary when one is due; healthy again when it passes (on every rank, and with
  /// the tensor-parallel group made again if it was aborted).
  void probe_if_due();
  /// A tensor-parallel worker whose group cannot step: a model's group was aborted, or an
  /// earlier rebuild stopped half way (a model without an engine).
  bool group_needs_rebuild() const;
  /// Makes the group again: hands back what its runners still hold, drops every model's
  /// engine, makes new collective handles and new engines. An error leaves the worker to try
  /// again at its next probe.
  kernels::status rebuild_group();
  /// The model's engine (one decoder, or the split over the ranks) and its runner.
  kernels::status make_engine(loaded_model& m);
  /// How long the idle step thread may sleep: until the next probe is due while unhealthy,
  /// otherwise without limit (nanoseconds::max()).
  std::chrono::nanoseconds idle_wait() const;
  /// The step thread enters and leaves a device call, under the stall watch. leave_device()
  /// is true when the call was given up on meanwhile; drop_given_up() must follow then.
  void enter_device(const std::string& what);
  bool leave_device();
  /// After a call that was given up on: its requests are another worker's now (the watch
  /// thread handed them back), so the step thread forgets them (frees their KV blocks) and
  /// waits for its next probe, unhealthy.
  void drop_given_up();
  /// The watch thread: gives up on a call of the step thread that is overdue.
  void watch();
  /// Gives up on the step thread's overdue call `what`. Watch thread, under mutex_ (which
  /// holds the step thread inside its call, away from live_ and its requests).
  void give_up_call(const std::string& what);
  /// The rest of rebuild_group(), inside its device call.
  kernels::status remake_group();
  /// The one place the health state changes: the snapshot's flag follows at the next publish,
  /// the `healthy` gauge at once (a scrape or a test that follows a health report must not
  /// read the old state).
  void set_healthy(bool healthy);
  /// Adds what the model's runner counted since the last call to the worker's pick metrics.
  void count_picks(loaded_model& m);
  /// Sends the finished reports gathered since the last flush (one call), if any.
  void flush_finished();

  // Declared in teardown order (reverse): the thread stops before the models go, and the
  // models before the backend they run on.
  step_loop_settings settings_;
  std::unique_ptr<kernels::backend> backend_;                   // the only one, or rank 0
  std::vector<std::unique_ptr<kernels::backend>> other_ranks_;  // tensor parallelism: 1..
  std::vector<std::unique_ptr<kernels::collective>> collectives_;
  collective_factory make_collectives_;  // empty: an aborted group stays down until restart
  std::string backend_name_;
  std::string probe_call_;  // the probe, as the stall watch names it
  std::string backend_error_;  // non-empty: no usable backend
  const clock_source& clock_;
  worker_reports reports_;
  serving::worker_metrics* metrics_;
  std::vector<std::unique_ptr<loaded_model>> models_;
  std::vector<std::string> model_ids_;
  // By ticket; touched by the step thread, and by the watch thread only while it holds mutex_
  // with the step thread inside a device call (which touches no request).
  std::map<std::uint64_t, live_request> live_;
  bool healthy_ = true;                         // step thread only
  recovery_backoff recovery_;                   // step thread only
  std::vector<serving::finished_report> finished_out_;  // step thread only; flushed per iteration

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<inbox_item> inbox_;
  bool stopping_ = false;
  bool clock_moved_ = false;  // clock_moved() was called since the step thread last woke
  serving::worker_snapshot published_;
  stall_detector stall_;                  // the step thread's device call, watched
  std::condition_variable watch_wake_;    // the watch thread's: stop, clock moved
  std::thread thread_;
  std::thread watch_thread_;  // runs only with a step_stall_limit
};

}  // namespace bastion::worker
