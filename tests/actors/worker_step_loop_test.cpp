// The worker's step thread on SmolLM2 (skips with 77 when the model is not fetched), driven
// directly with a manual clock and a backend that can be broken and healed: a failing step
// hands its request back and reports the worker unhealthy; the worker probes after a doubling,
// capped backoff (nothing before it is due), counts the probes, and reports itself healthy
// again (counted as a recovery) once its backend works, after which it serves requests again.
// While it waits to probe it sleeps (no spinning on the clock), woken by a moved clock or a
// stop. Requests that end in the same iteration are reported in one finished message.

#define CATCH_CONFIG_RUNNER
#include "actors/worker/worker_step_loop.hpp"
#include "kernels/cpu/cpu_backend.hpp"
#include "kernels/engine/tensor_parallel.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/metrics/registry.hpp"
#include "tests/actors/flaky_backend.hpp"
#include "tests/kernels/forwarding_collective.hpp"
#include "tests/kernels/host_as_device_backend.hpp"
#include "tests/support/model_path.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace bastion;
using namespace std::chrono_literals;

namespace {

// What the step thread reported, for the test thread to wait on.
struct recorder {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::pair<bool, std::string>> health;
  std::vector<std::uint64_t> preempted;
  std::vector<std::uint64_t> finished;
  std::vector<std::vector<std::uint64_t>> finished_batches;  // the tickets of each finished call

  // Whether `ticket` was reported finished. REQUIRES: `mutex` held (a wait() predicate).
  bool finished_has(std::uint64_t ticket) const {
    return std::find(finished.begin(), finished.end(), ticket) != finished.end();
  }

  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds limit = 20s) {
    std::unique_lock<std::mutex> lock(mutex);
    return changed.wait_for(lock, limit, pred);
  }
  worker::worker_reports reports() {
    worker::worker_reports r;
    r.finished = [this](std::vector<serving::finished_report> batch) {
      std::lock_guard<std::mutex> lock(mutex);
      finished_batches.emplace_back();
      for (const auto& f : batch) {
        finished.push_back(f.ticket);
        finished_batches.back().push_back(f.ticket);
      }
      changed.notify_all();
    };
    r.preempted = [this](std::uint64_t ticket) {
      std::lock_guard<std::mutex> lock(mutex);
      preempted.push_back(ticket);
      changed.notify_all();
    };
    r.health = [this](bool healthy, const std::string& why) {
      std::lock_guard<std::mutex> lock(mutex);
      health.emplace_back(healthy, why);
      changed.notify_all();
    };
    return r;
  }
};

// A manual clock that counts how often it is read: the step thread reads the clock on every
// turn of its loop while unhealthy, so the count bounds how often it woke.
class counting_clock final : public clock_source {
 public:
  explicit counting_clock(duration start) : time_(start) {}
  void advance(duration d) noexcept { time_.advance(d); }
  duration monotonic() const noexcept override {
    reads_.fetch_add(1);
    return time_.monotonic();
  }
  duration wall() const noexcept override { return time_.wall(); }
  std::uint64_t reads() const noexcept { return reads_.load(); }

 private:
  manual_clock time_;
  mutable std::atomic<std::uint64_t> reads_{0};
};

struct outcome {
  std::mutex mutex;
  std::optional<gateway::completion> done;
};

// The completion tokens of the request's answer; nothing while it has none or when it failed.
std::optional<std::uint32_t> answer_tokens(outcome& o) {
  std::lock_guard<std::mutex> lock(o.mutex);
  if (!o.done) return std::nullopt;
  const auto* result = std::get_if<gateway::final_result>(&*o.done);
  if (!result) return std::nullopt;
  return result->usage.completion_tokens;
}

serving::served_request_ptr make_request(
    std::uint64_t ticket, std::shared_ptr<outcome> out,
    gateway::inference_input input = std::string{"The capital of France is"},
    serving::serving_metrics* counted_in = nullptr, gateway::token_callback on_token = nullptr,
    const std::function<void(gateway::inference_request&)>& adjust = nullptr) {
  gateway::inference_request req;
  req.request_id = "r" + std::to_string(ticket);
  req.model = "m";
  req.input = std::move(input);
  req.params.max_tokens = 3;
  req.params.temperature = 0.0f;
  req.stream = on_token != nullptr;
  if (adjust) adjust(req);
  auto r = std::make_shared<serving::served_request>(
      std::move(req), std::move(on_token),
      [out](gateway::completion c) {
        std::lock_guard<std::mutex> lock(out->mutex);
        out->done = std::move(c);
      },
      "prod", counted_in);
  r->ticket = ticket;
  return r;
}

// Advances the manual clock, wakes the step thread to see it, and waits (real time) until
// the worker ran `want` probes in all.
bool advance_until(counting_clock& clock, worker::worker_step_loop& loop,
                   const serving::worker_metrics& metrics, std::chrono::milliseconds d,
                   std::uint64_t want) {
  clock.advance(d);
  loop.clock_moved();
  for (int i = 0; i < 2000 && metrics.recovery_probes->value() < want; ++i)
    std::this_thread::sleep_for(5ms);
  return metrics.recovery_probes->value() == want;
}

// A worker `id` serving SmolLM2 as model "m" (4 sequences a step, 64 KV blocks) on a manual
// clock, with its metrics and reports kept for the test.
struct observed_worker {
  counting_clock clock{1000s};
  metrics::registry registry;
  serving::worker_metrics metrics;
  recorder seen;
  std::unique_ptr<worker::worker_step_loop> loop;

  explicit observed_worker(const std::string& id) : metrics(registry, id), id_(id) {}
  void start(worker::worker_backend be, std::int64_t context_tokens_max = 512,
             std::chrono::milliseconds backoff = 100ms,
             std::chrono::milliseconds backoff_max = 400ms,
             std::chrono::milliseconds stall_limit = 0ms) {
    worker::step_loop_settings s;
    s.step_stall_limit = stall_limit;
    s.worker_id = id_;
    s.batch_max = 4;
    s.kv_blocks = 64;
    s.recovery_backoff = backoff;
    s.recovery_backoff_max = backoff_max;
    std::string error;
    loop = worker::worker_step_loop::create(s, {{"m", test::smollm2_path(), context_tokens_max}},
                                            std::move(be), clock, seen.reports(), &metrics, error);
    INFO(error);
    REQUIRE(loop);
  }

 private:
  std::string id_;
};

struct node_under_test : observed_worker {
  test::flaky_backend* backend = nullptr;

  explicit node_under_test(std::int64_t context_tokens_max = 512,
                           std::chrono::milliseconds backoff = 100ms,
                           std::chrono::milliseconds backoff_max = 400ms,
                           std::chrono::milliseconds stall_limit = 0ms)
      : observed_worker("w") {
    auto flaky = std::make_unique<test::flaky_backend>(kernels::make_cpu_backend());
    backend = flaky.get();
    worker::worker_backend be;
    be.backend = std::move(flaky);
    be.name = "cpu";
    start(std::move(be), context_tokens_max, backoff, backoff_max, stall_limit);
  }
  // A step thread blocked in a hang would keep the loop's stop from returning.
  ~node_under_test() { backend->release(); }

  std::uint64_t probes() const { return metrics.recovery_probes->value(); }
  bool advance_until_probes(std::chrono::milliseconds d, std::uint64_t want) {
    return advance_until(clock, *loop, metrics, d, want);
  }
  // Advances the clock, wakes the step thread, waits until it has read the moved clock (a
  // due probe would run between its reads), and says whether it stayed without a probe.
  bool advance_without_probe(std::chrono::milliseconds d) {
    const auto before = probes();
    clock.advance(d);
    const auto reads = clock.reads();
    loop->clock_moved();
    for (int i = 0; i < 200 && clock.reads() < reads + 2; ++i) std::this_thread::sleep_for(5ms);
    std::this_thread::sleep_for(10ms);
    return probes() == before;
  }
  // Breaks the backend and has a request's step fail on it: the worker is unhealthy (and has
  // published so) once this returns.
  void fail_a_step(std::uint64_t ticket) {
    backend->set_broken(true);
    REQUIRE(loop->submit(make_request(ticket, std::make_shared<outcome>()), "m"));
    REQUIRE(seen.wait([&] { return seen.preempted.size() == 1; }));
    for (int i = 0; i < 400 && loop->snapshot().healthy; ++i) std::this_thread::sleep_for(5ms);
    REQUIRE_FALSE(loop->snapshot().healthy);
  }
};

}  // namespace

TEST_CASE("an unhealthy worker probes after a doubling capped backoff and recovers") {
  node_under_test n;
  auto first = std::make_shared<outcome>();
  n.backend->set_broken(true);
  REQUIRE(n.loop->submit(make_request(1, first), "m"));
  // The step fails: unhealthy first, then the request is handed back for another worker.
  REQUIRE(n.seen.wait([&] { return n.seen.preempted.size() == 1; }));
  {
    std::lock_guard<std::mutex> lock(n.seen.mutex);
    REQUIRE(n.seen.health.size() == 1);
    CHECK_FALSE(n.seen.health[0].first);
    CHECK_THAT(n.seen.health[0].second, Catch::Contains("injected fault"));
  }
  CHECK(n.metrics.healthy->value() == 0.0);

  // t+0: failed step. Probes due at t+100 (fails), t+300 (fails), t+700 (fails), then every
  // 400 ms (the cap, not 800).
  CHECK(n.advance_without_probe(99ms));
  CHECK(n.advance_until_probes(1ms, 1));  // t+100
  CHECK(n.advance_without_probe(199ms));  // t+299
  CHECK(n.advance_until_probes(1ms, 2));  // t+300
  CHECK(n.advance_without_probe(399ms));  // t+699
  CHECK(n.advance_until_probes(1ms, 3));  // t+700
  n.backend->set_broken(false);
  CHECK(n.advance_without_probe(399ms));  // t+1099
  CHECK(n.advance_until_probes(1ms, 4));  // t+1100: the capped backoff, and it passes
  REQUIRE(n.seen.wait([&] { return n.seen.health.size() == 2; }));
  {
    std::lock_guard<std::mutex> lock(n.seen.mutex);
    CHECK(n.seen.health[1].first);
    CHECK_THAT(n.seen.health[1].second, Catch::Contains("after 3 failed"));
  }
  CHECK(n.metrics.recoveries->value() == 1u);
  for (int i = 0; i < 200 && !n.loop->snapshot().healthy; ++i) std::this_thread::sleep_for(5ms);
  CHECK(n.loop->snapshot().healthy);
  CHECK(n.advance_without_probe(10s));  // healthy: no more probes

  // It serves again: a new request completes with text.
  auto second = std::make_shared<outcome>();
  REQUIRE(n.loop->submit(make_request(2, second), "m"));
  REQUIRE(n.seen.wait([&] { return n.seen.finished_has(2); }));
  CHECK(answer_tokens(*second) == 3u);
}

TEST_CASE("a later fault starts the backoff from its initial value again") {
  node_under_test n;
  n.backend->set_broken(true);
  REQUIRE(n.loop->submit(make_request(1, std::make_shared<outcome>()), "m"));
  REQUIRE(n.seen.wait([&] { return n.seen.preempted.size() == 1; }));
  n.backend->set_broken(false);
  CHECK(n.advance_until_probes(100ms, 1));
  REQUIRE(n.seen.wait([&] { return n.seen.health.size() == 2; }));
  n.backend->set_broken(true);
  REQUIRE(n.loop->submit(make_request(2, std::make_shared<outcome>()), "m"));
  REQUIRE(n.seen.wait([&] { return n.seen.health.size() == 3; }));
  n.backend->set_broken(false);
  CHECK(n.advance_without_probe(99ms));
  CHECK(n.advance_until_probes(1ms, 2));
  REQUIRE(n.seen.wait([&] { return n.seen.health.size() == 4; }));
  CHECK(n.metrics.recoveries->value() == 2u);
}

TEST_CASE("an unhealthy worker sleeps until its probe is due instead of polling the clock") {
  // A backoff far longer than the test. The step thread reads the clock on every turn of its
  // loop while unhealthy: one that polled (every 20 ms, as it once did) would read it a dozen
  // times or more in 300 ms; one that sleeps until the probe is due reads it at most once,
  // at the end of the turn that failed.
  node_under_test n(512, 10s, 10s);
  n.fail_a_step(1);
  const auto reads = n.clock.reads();
  std::this_thread::sleep_for(300ms);
  CHECK(n.clock.reads() - reads <= 1);
  CHECK(n.probes() == 0);
  // A moved clock wakes it: the probe runs now, not when ten seconds of real time are over.
  n.backend->set_broken(false);
  const auto woken = std::chrono::steady_clock::now();
  CHECK(n.advance_until_probes(10s, 1));
  CHECK(std::chrono::steady_clock::now() - woken < 5s);
  REQUIRE(n.seen.wait([&] { return n.seen.health.size() == 2; }));
  std::lock_guard<std::mutex> lock(n.seen.mutex);
  CHECK(n.seen.health[1].first);
}

TEST_CASE("new work and a stop wake an unhealthy worker at once") {
  node_under_test n(512, 10s, 10s);
  n.fail_a_step(1);
  // Still broken: the new request is taken now (not after the backoff), fails its step and
  // is handed back; the worker was already unhealthy, so there is no second report.
  const auto submitted = std::chrono::steady_clock::now();
  REQUIRE(n.loop->submit(make_request(2, std::make_shared<outcome>()), "m"));
  REQUIRE(n.seen.wait([&] { return n.seen.preempted.size() == 2; }, 5s));
  CHECK(std::chrono::steady_clock::now() - submitted < 5s);
  const auto stopping = std::chrono::steady_clock::now();
  n.loop->stop();
  CHECK(std::chrono::steady_clock::now() - stopping < 5s);
  std::lock_guard<std::mutex> lock(n.seen.mutex);
  CHECK(n.seen.health.size() == 1);
  CHECK(n.probes() == 0);
}

TEST_CASE("a step that does not return is given up on and its requests go to other workers") {
  node_under_test n(512, 100ms, 400ms, 5s);
  std::atomic<int> tokens{0};
  auto first_out = std::make_shared<outcome>();
  auto first = make_request(1, first_out, std::string{"The capital of France is"}, nullptr,
                            [&](gateway::token_event) { ++tokens; });
  n.backend->hang_next();
  REQUIRE(n.loop->submit(first, "m"));
  REQUIRE(n.backend->wait_hanging());  // the step thread is inside its step, which hangs

  // Within the limit a slow call is left alone.
  n.clock.advance(4s);
  n.loop->clock_moved();
  std::this_thread::sleep_for(50ms);
  CHECK(n.metrics.step_stalls->value() == 0u);
  {
    std::lock_guard<std::mutex> lock(n.seen.mutex);
    CHECK(n.seen.health.empty());
    CHECK(n.seen.preempted.empty());
  }

  // Past it: unhealthy first, then the request goes back, all while the call still hangs.
  n.clock.advance(2s);
  n.loop->clock_moved();
  REQUIRE(n.seen.wait([&] { return n.seen.preempted.size() == 1; }));
  {
    std::lock_guard<std::mutex> lock(n.seen.mutex);
    REQUIRE(n.seen.health.size() == 1);
    CHECK_FALSE(n.seen.health[0].first);
    CHECK_THAT(n.seen.health[0].second, Catch::Contains("a step of model 'm'") &&
                                            Catch::Contains("has not returned for 6.0 s") &&
                                            Catch::Contains("handed its 1 requests"));
    CHECK(n.seen.preempted[0] == 1u);
  }
  CHECK(first->failovers == 1u);
  CHECK(n.metrics.step_stalls->value() == 1u);
  CHECK(n.metrics.healthy->value() == 0.0);
  CHECK_FALSE(n.loop->snapshot().healthy);

  // Work sent before the scheduler heard is handed back as it comes, never started here.
  REQUIRE(n.loop->submit(make_request(2, std::make_shared<outcome>()), "m"));
  REQUIRE(n.seen.wait([&] { return n.seen.preempted.size() == 2; }, 2s));

  // The call returns after all: what it produced reaches nobody (the request is another
  // worker's now), and its KV blocks are freed.
  n.backend->release();
  bool freed = false;
  for (int i = 0; i < 400 && !freed; ++i) {
    std::this_thread::sleep_for(5ms);
    const auto s = n.loop->snapshot();
    freed = s.running == 0 && s.kv_blocks_used == 0 && s.steps > 0;
  }
  CHECK(freed);
  CHECK(tokens.load() == 0);
  CHECK(first->generated.empty());
  {
    std::lock_guard<std::mutex> lock(first_out->mutex);
    CHECK_FALSE(first_out->done);
  }

  // It recovers by its probe and serves again.
  CHECK(n.advance_until_probes(100ms, 1));
  REQUIRE(n.seen.wait([&] { return n.seen.health.size() == 2; }));
  {
    std::lock_guard<std::mutex> lock(n.seen.mutex);
    CHECK(n.seen.health[1].first);
  }
  auto third = std::make_shared<outcome>();
  REQUIRE(n.loop->submit(make_request(3, third), "m"));
  REQUIRE(n.seen.wait([&] { return n.seen.finished_has(3); }));
  CHECK(answer_tokens(*third) == 3u);
  CHECK(n.metrics.step_stalls->value() == 1u);
}

TEST_CASE("a request that has failed over as often as allowed fails with a stalled step") {
  node_under_test n(512, 100ms, 400ms, 5s);
  auto out = std::make_shared<outcome>();
  auto r = make_request(1, out);
  r->failovers = 2;  // the settings' failovers_max
  n.backend->hang_next();
  REQUIRE(n.loop->submit(r, "m"));
  REQUIRE(n.backend->wait_hanging());
  n.clock.advance(5001ms);
  n.loop->clock_moved();
  REQUIRE(n.seen.wait([&] { return n.seen.finished.size() == 1; }));
  {
    std::lock_guard<std::mutex> lock(n.seen.mutex);
    CHECK(n.seen.preempted.empty());
    CHECK(n.seen.finished[0] == 1u);
  }
  std::lock_guard<std::mutex> lock(out->mutex);
  REQUIRE(out->done);
  const auto* error = std::get_if<gateway::inference_error>(&*out->done);
  REQUIRE(error != nullptr);
  CHECK(error->code == gateway::error_code::internal);
  CHECK_THAT(error->message, Catch::Contains("worker 'w'") &&
                                 Catch::Contains("has not returned for 5.0 s") &&
                                 Catch::Contains("given up"));
}

TEST_CASE("without a stall limit a slow step is waited for") {
  node_under_test n;  // step_stall_limit 0: no watch
  auto out = std::make_shared<outcome>();
  n.backend->hang_next();
  REQUIRE(n.loop->submit(make_request(1, out), "m"));
  REQUIRE(n.backend->wait_hanging());
  n.clock.advance(std::chrono::hours{24});
  n.loop->clock_moved();
  std::this_thread::sleep_for(50ms);
  n.backend->release();
  REQUIRE(n.seen.wait([&] { return n.seen.finished.size() == 1; }));
  std::lock_guard<std::mutex> lock(n.seen.mutex);
  CHECK(n.seen.health.empty());
  CHECK(n.seen.preempted.empty());
  CHECK(n.metrics.step_stalls->value() == 0u);
}

TEST_CASE("requests that end in the same iteration are reported in one finished message") {
  node_under_test n;
  // Request 1's first token holds the step thread (its callback runs there) while three more
  // requests are submitted, so the next iteration takes the three together: they prefill in
  // one step, decode in lockstep (greedy, the same prompt and length) and end in one step.
  std::mutex gate;
  std::condition_variable gate_changed;
  bool holding = false, released = false;
  auto hold_first_token = [&](gateway::token_event) {
    std::unique_lock<std::mutex> lock(gate);
    if (released) return;
    holding = true;
    gate_changed.notify_all();
    gate_changed.wait(lock, [&] { return released; });
  };
  REQUIRE(n.loop->submit(
      make_request(1, std::make_shared<outcome>(), std::string{"Hello"}, nullptr, hold_first_token),
      "m"));
  {
    std::unique_lock<std::mutex> lock(gate);
    REQUIRE(gate_changed.wait_for(lock, 20s, [&] { return holding; }));
  }
  std::vector<std::shared_ptr<outcome>> outs;
  for (std::uint64_t ticket = 2; ticket <= 4; ++ticket) {
    outs.push_back(std::make_shared<outcome>());
    REQUIRE(n.loop->submit(make_request(ticket, outs.back()), "m"));
  }
  {
    std::lock_guard<std::mutex> lock(gate);
    released = true;
  }
  gate_changed.notify_all();
  REQUIRE(n.seen.wait([&] { return n.seen.finished.size() == 4; }));
  {
    std::lock_guard<std::mutex> lock(n.seen.mutex);
    std::vector<std::uint64_t> with_2;
    for (const auto& batch : n.seen.finished_batches)
      if (std::find(batch.begin(), batch.end(), 2u) != batch.end()) with_2 = batch;
    std::sort(with_2.begin(), with_2.end());
    // One message for the three, not one each.
    CHECK(with_2 == std::vector<std::uint64_t>{2, 3, 4});
    CHECK(n.seen.finished_batches.size() == 2);  // request 1 ended earlier, in its own
  }
  for (const auto& out : outs) CHECK(answer_tokens(*out) == 3u);
}

TEST_CASE("a prompt longer than the context is refused and counted as prompt_too_long") {
  node_under_test n(16);
  serving::serving_metrics counted{n.registry};
  auto long_one = std::make_shared<outcome>();
  std::string words;
  for (int i = 0; i < 40; ++i) words += "word ";
  REQUIRE(n.loop->submit(make_request(1, long_one, words, &counted), "m"));
  // Malformed input (a token id outside the vocabulary) stays an ordinary invalid request.
  auto bad_ids = std::make_shared<outcome>();
  REQUIRE(n.loop->submit(
      make_request(2, bad_ids, std::vector<std::uint32_t>{1, 2, 1u << 30}, &counted), "m"));
  REQUIRE(n.seen.wait([&] { return n.seen.finished.size() == 2; }));
  {
    std::lock_guard<std::mutex> lock(long_one->mutex);
    REQUIRE(long_one->done);
    const auto* e = std::get_if<gateway::inference_error>(&*long_one->done);
    REQUIRE(e != nullptr);
    CHECK(e->code == gateway::error_code::invalid_argument);
    CHECK(e->param == "input");
    CHECK(e->reason == "prompt_too_long");
    CHECK_THAT(e->message, Catch::Contains("context holds 16"));
  }
  {
    std::lock_guard<std::mutex> lock(bad_ids->mutex);
    REQUIRE(bad_ids->done);
    const auto* e = std::get_if<gateway::inference_error>(&*bad_ids->done);
    REQUIRE(e != nullptr);
    CHECK(e->reason.empty());
  }
  using scheduling::priority_class;
  CHECK(counted.requests(priority_class::interactive, serving::request_outcome::prompt_too_long) ==
        1u);
  CHECK(counted.requests(priority_class::interactive, serving::request_outcome::invalid) == 1u);
  CHECK(
      n.registry.render_prometheus().find(
          "bastion_serving_requests_total{class=\"interactive\",outcome=\"prompt_too_long\"} 1") !=
      std::string::npos);
  // The worker stays healthy: bad input is the client's fault, not the backend's.
  CHECK(n.seen.health.empty());
}

// A rank's handle of a thread group owned by the test (the worker owns its handles).
using borrowed_rank = test::forwarding_collective;

std::string answer_of(outcome& o) {
  std::lock_guard<std::mutex> lock(o.mutex);
  if (!o.done) return "(no answer)";
  if (const auto* r = std::get_if<gateway::final_result>(&*o.done)) return r->text;
  return "(error) " + std::get<gateway::inference_error>(*o.done).message;
}

TEST_CASE("a worker on three ranks serves the model split across them, answering as one does") {
  // SmolLM2's 3 KV heads and 1536 MLP columns split three ways (CPU ranks stand in for GPUs).
  node_under_test one;
  auto alone = std::make_shared<outcome>();
  REQUIRE(one.loop->submit(make_request(1, alone), "m"));
  REQUIRE(one.seen.wait([&] { return one.seen.finished.size() == 1; }));

  kernels::local_collective_group group{3};
  counting_clock clock{1000s};
  recorder seen;
  worker::worker_backend be;
  be.backend = kernels::make_cpu_backend();
  be.name = "cpu x3";
  for (int r = 1; r < 3; ++r) be.other_ranks.push_back(kernels::make_cpu_backend());
  for (int r = 0; r < 3; ++r)
    be.collectives.push_back(std::make_unique<borrowed_rank>(group.rank(r)));
  worker::step_loop_settings s;
  s.worker_id = "tp";
  s.batch_max = 4;
  s.kv_blocks = 64;
  std::string error;
  auto loop = worker::worker_step_loop::create(s, {{"m", test::smollm2_path(), 512}}, std::move(be),
                                               clock, seen.reports(), nullptr, error);
  INFO(error);
  REQUIRE(loop);
  auto split = std::make_shared<outcome>();
  REQUIRE(loop->submit(make_request(1, split), "m"));
  REQUIRE(seen.wait([&] { return seen.finished.size() == 1; }));
  CHECK(answer_of(*split) == answer_of(*alone));
  CHECK(answer_of(*split).find("Paris") != std::string::npos);
  CHECK(loop->snapshot().backend == "cpu x3");
  CHECK(loop->snapshot().healthy);
  loop->stop();

  // Ranks and handles that do not match are refused at load, naming the worker.
  worker::worker_backend odd;
  odd.backend = kernels::make_cpu_backend();
  odd.other_ranks.push_back(kernels::make_cpu_backend());
  std::string why;
  CHECK_FALSE(worker::worker_step_loop::create(
      s, {{"m", test::smollm2_path(), 512}}, std::move(odd), clock, seen.reports(), nullptr, why));
  CHECK_THAT(why, Catch::Contains("worker 'tp'") && Catch::Contains("collective handles"));
}

// A worker on three CPU ranks whose third rank's device can be broken and healed, and whose
// group is made by a factory that can be told to fail.
struct tp_node : observed_worker {
  test::flaky_backend* rank2 = nullptr;
  std::atomic<int> groups_made{0};
  std::atomic<int> refuse_next{0};  // the factory's next calls that fail

  explicit tp_node(bool can_rebuild) : observed_worker("tp") {
    worker::worker_backend be;
    be.backend = kernels::make_cpu_backend();
    be.name = "cpu x3";
    be.other_ranks.push_back(kernels::make_cpu_backend());
    auto flaky = std::make_unique<test::flaky_backend>(kernels::make_cpu_backend());
    rank2 = flaky.get();
    be.other_ranks.push_back(std::move(flaky));
    REQUIRE(kernels::make_local_collectives(3, be.collectives));
    if (can_rebuild)
      be.make_collectives = [this](const std::vector<kernels::backend*>& ranks,
                                   std::vector<std::unique_ptr<kernels::collective>>& out) {
        if (refuse_next.load() > 0) {
          refuse_next.fetch_sub(1);
          return kernels::status{kernels::status_code::device_error, "injected: no group"};
        }
        ++groups_made;
        return kernels::make_local_collectives(static_cast<int>(ranks.size()), out);
      };
    start(std::move(be));
  }
  bool advance_until_probes(std::chrono::milliseconds d, std::uint64_t want) {
    return advance_until(clock, *loop, metrics, d, want);
  }
  // Rank 2 fails at its first operation while ranks 0 and 1 wait for it in the first
  // all-reduce: the group is aborted, the request handed back, the worker unhealthy.
  void abort_the_group(std::uint64_t ticket) {
    rank2->set_broken(true);
    REQUIRE(loop->submit(make_request(ticket, std::make_shared<outcome>()), "m"));
    REQUIRE(seen.wait([&] { return seen.preempted.size() == 1; }));
    REQUIRE(seen.wait([&] { return !seen.health.empty(); }));
    CHECK_FALSE(seen.health[0].first);
    CHECK_THAT(seen.health[0].second, Catch::Contains("collective was aborted"));
    for (int i = 0; i < 400 && loop->snapshot().healthy; ++i) std::this_thread::sleep_for(5ms);
    REQUIRE_FALSE(loop->snapshot().healthy);
  }
};

TEST_CASE("a tensor-parallel worker makes its aborted group again once every rank passes") {
  tp_node n{true};
  n.abort_the_group(1);

  // Rank 2 still broken: the probe fails on it, and no group is made.
  REQUIRE(n.advance_until_probes(100ms, 1));
  CHECK(n.groups_made == 0);
  CHECK_FALSE(n.loop->snapshot().healthy);

  // Every rank works, but making the group fails: still unhealthy, and the models have no
  // engine until the next probe; a request given meanwhile goes back to the scheduler.
  n.rank2->set_broken(false);
  n.refuse_next = 1;
  REQUIRE(n.advance_until_probes(200ms, 2));
  CHECK(n.groups_made == 0);
  CHECK(n.metrics.group_rebuilds->value() == 0);
  CHECK_FALSE(n.loop->snapshot().healthy);
  REQUIRE(n.loop->submit(make_request(2, std::make_shared<outcome>()), "m"));
  REQUIRE(n.seen.wait([&] { return n.seen.preempted.size() == 2; }));
  CHECK(n.seen.preempted[1] == 2);

  // The next probe makes the group and the engines again: healthy, and serving.
  REQUIRE(n.advance_until_probes(400ms, 3));
  REQUIRE(n.seen.wait([&] { return n.seen.health.size() == 2; }));
  CHECK(n.seen.health[1].first);
  CHECK_THAT(n.seen.health[1].second, Catch::Contains("made again"));
  CHECK(n.groups_made == 1);
  CHECK(n.metrics.group_rebuilds->value() == 1);
  CHECK(n.metrics.recoveries->value() == 1);
  auto answer = std::make_shared<outcome>();
  REQUIRE(n.loop->submit(make_request(3, answer), "m"));
  REQUIRE(n.seen.wait([&] { return n.seen.finished.size() == 1; }));
  CHECK(answer_of(*answer).find("Paris") != std::string::npos);
  CHECK(n.loop->snapshot().healthy);
  CHECK(n.loop->snapshot().steps > 0);
}

TEST_CASE("a tensor-parallel worker that cannot make its group again stays unhealthy") {
  tp_node n{false};
  n.abort_the_group(1);
  n.rank2->set_broken(false);
  REQUIRE(n.advance_until_probes(100ms, 1));
  REQUIRE(n.advance_until_probes(200ms, 2));
  CHECK_FALSE(n.loop->snapshot().healthy);
  CHECK(n.seen.health.size() == 1);
  // A request given to it now still goes back to the scheduler, never hangs or answers wrong.
  REQUIRE(n.loop->submit(make_request(2, std::make_shared<outcome>()), "m"));
  REQUIRE(n.seen.wait([&] { return n.seen.preempted.size() == 2; }));
}

TEST_CASE("a worker on a device backend counts how its tokens were picked") {
  // The CPU backend dressed as a device: the runner takes its device paths (candidates, the
  // penalty applied where the logits are), and the worker publishes what it counted.
  observed_worker w{"dev"};
  worker::worker_backend be;
  be.backend = std::make_unique<test::host_as_device_backend>();
  be.name = "host-as-device";
  w.start(std::move(be));
  auto& loop = w.loop;
  auto& seen = w.seen;
  auto& metrics = w.metrics;
  auto& registry = w.registry;

  auto greedy = make_request(1, std::make_shared<outcome>());
  REQUIRE(loop->submit(greedy, "m"));
  REQUIRE(seen.wait([&] { return seen.finished.size() == 1; }));
  CHECK(metrics.candidate_draws->value() == 0);  // greedy tokens come back as ids
  CHECK(metrics.penalised_rows->value() == 0);

  auto sampled = make_request(2, std::make_shared<outcome>(), std::string{"Once upon a time"},
                              nullptr, nullptr, [](gateway::inference_request& r) {
                                r.params.max_tokens = 12;
                                r.params.temperature = 0.8f;
                                r.params.top_k = 40;
                                r.params.repetition_penalty = 1.3f;
                                r.params.seed = 11;
                              });
  REQUIRE(loop->submit(sampled, "m"));
  REQUIRE(seen.wait([&] { return seen.finished.size() == 2; }));
  const auto tokens = static_cast<std::uint64_t>(sampled->generated.size());
  REQUIRE(tokens > 0);
  // Every sampled token was drawn from candidates or from a row brought back for it, and
  // every one of its rows carried the penalty.
  CHECK(metrics.candidate_draws->value() + metrics.logit_rows_downloaded->value() == tokens);
  CHECK(metrics.candidate_draws->value() > 0);
  CHECK(metrics.penalised_rows->value() == tokens);
  const std::string text = registry.render_prometheus();
  CHECK_THAT(text, Catch::Contains("bastion_worker_candidate_draws_total{worker=\"dev\"}"));
}

TEST_CASE("a request resumed on another model is encoded again for it") {
  node_under_test n;
  // The ids of another prompt, as if another model's tokenizer had made them.
  auto germany = std::make_shared<outcome>();
  auto first = make_request(1, germany, std::string{"The capital of Germany is"});
  REQUIRE(n.loop->submit(first, "m"));
  REQUIRE(n.seen.wait([&] { return n.seen.finished.size() == 1; }));
  REQUIRE(answer_of(*germany).find("Berlin") != std::string::npos);

  auto france = std::make_shared<outcome>();
  auto moved = make_request(2, france);  // "The capital of France is"
  moved->prompt_ids = first->prompt_ids;
  moved->encoded_for = "a-model-with-another-tokenizer";
  REQUIRE(n.loop->submit(moved, "m"));
  REQUIRE(n.seen.wait([&] { return n.seen.finished.size() == 2; }));
  // Reusing the ids would answer for Germany.
  CHECK(answer_of(*france).find("Paris") != std::string::npos);
  CHECK(moved->encoded_for == "m");
}

int main(int argc, char** argv) {
  const std::string path = bastion::test::smollm2_path();
  if (!bastion::test::file_exists(path)) {
    std::printf("SKIP: %s not found (run scripts/fetch-model)\n", path.c_str());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
