// Scheduler overhead: requests/s through the inference_port -> scheduler actor -> a no-op
// worker actor -> completion callback, against raw CAF request/response round trips between
// two actors measured in the same run, both with the same number of requests in flight.
// Prints both rates and their ratio (the goal: at least 0.5x raw CAF).
//
//   build/bench/scheduler_overhead_bench [seconds per measurement, default 2] [in flight, 64]

#include "actors/scheduler/scheduler_actor.hpp"
#include "actors/serving/serving_port.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace bastion;
using namespace bastion::serving;
using steady = std::chrono::steady_clock;

namespace {

// Finishes every request at once: what is left is the scheduler's own cost. Like the real
// worker (whose step loop reports what ended in one iteration together), it reports the
// requests of one start message in one finished message.
worker_actor::behavior_type noop_worker(worker_actor::pointer, caf::actor scheduler) {
  return {
      [scheduler](start_atom, work_batch& b) {
        std::vector<finished_report> done;
        done.reserve(b.items.size());
        for (auto& w : b.items) {
          w.request->complete(
              gateway::final_result{"", gateway::finish_reason::stop, {1, 1}, w.model, "prod", 0},
              request_outcome::completed);
          done.push_back({w.request->ticket, 1000});
        }
        caf::anon_send(scheduler, finished_atom::value, std::move(done));
      },
      [](snapshot_atom) { return worker_snapshot{}; },
  };
}

caf::behavior echo(caf::event_based_actor*) {
  return {[](std::uint64_t x) { return x; }};
}

struct raw_state {
  std::uint64_t done = 0;
};

// Keeps `in_flight` requests outstanding to `target` until `stop` is set.
caf::behavior raw_driver(caf::stateful_actor<raw_state>* self, caf::actor target, int in_flight,
                         std::atomic<bool>* stop, std::atomic<std::uint64_t>* total) {
  auto send_one = std::make_shared<std::function<void()>>();
  *send_one = [self, target, stop, total, send_one] {
    self->request(target, caf::infinite, std::uint64_t{1}).then([=](std::uint64_t) {
      total->fetch_add(1, std::memory_order_relaxed);
      if (!stop->load(std::memory_order_relaxed)) (*send_one)();
    });
  };
  for (int i = 0; i < in_flight; ++i) (*send_one)();
  return {[](caf::unit_t) {}};
}

double measure(std::atomic<std::uint64_t>& total, double seconds) {
  const auto t0 = steady::now();
  const auto n0 = total.load();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const auto n1 = total.load();
  const double dt = std::chrono::duration<double>(steady::now() - t0).count();
  return static_cast<double>(n1 - n0) / dt;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const int in_flight = argc > 2 ? std::atoi(argv[2]) : 64;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};

  // Raw CAF: request/response between two actors.
  std::atomic<bool> raw_stop{false};
  std::atomic<std::uint64_t> raw_total{0};
  auto target = sys.spawn(echo);
  auto driver = sys.spawn(raw_driver, target, in_flight, &raw_stop, &raw_total);
  measure(raw_total, 0.3);  // warm up
  const double raw = measure(raw_total, seconds);
  raw_stop = true;
  caf::anon_send_exit(driver, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(target, caf::exit_reason::user_shutdown);

  // The serving path: port -> scheduler -> no-op worker -> on_done, which submits the next.
  system_clock_source clock;
  scheduler_settings ss;
  ss.policy.queue_max = {4096, 4096, 4096, 4096};
  auto scheduler = sys.spawn(scheduler_actor_impl, ss, &clock, nullptr);
  auto worker = sys.spawn(noop_worker, caf::actor_cast<caf::actor>(scheduler));
  scheduling::worker_state w;
  w.id = "noop";
  w.models = {"m"};
  w.slots = static_cast<std::size_t>(in_flight);
  caf::anon_send(scheduler, register_atom::value, worker_registration{w, worker});
  serving_port port(scheduler, "prod", {{"m", 4096, "bastion", 0}}, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> total{0};
  // The client: each completion submits the next request (its callback holds one pointer,
  // as the raw driver's continuation holds its few).
  struct client {
    serving_port* port;
    std::atomic<bool>* stop;
    std::atomic<std::uint64_t>* total;
    std::atomic<std::uint64_t> ids{0};
    void submit_one() {
      gateway::inference_request req;
      req.request_id = "r" + std::to_string(ids.fetch_add(1));
      req.model = "m";
      req.input = std::string{"x"};
      port->submit(std::move(req), nullptr, [this](gateway::completion) {
        total->fetch_add(1, std::memory_order_relaxed);
        if (!stop->load(std::memory_order_relaxed)) submit_one();
      });
    }
  };
  client c{&port, &stop, &total};
  for (int i = 0; i < in_flight; ++i) c.submit_one();
  measure(total, 0.3);
  const double served = measure(total, seconds);
  stop = true;
  std::this_thread::sleep_for(std::chrono::milliseconds{100});
  // How many requests one scheduling pass placed, over the whole run.
  std::uint64_t passes = 0;
  {
    caf::scoped_actor self{sys};
    self->request(scheduler, caf::infinite, snapshot_atom::value)
        .receive([&](const scheduler_snapshot& s) { passes = s.passes; }, [](const caf::error&) {});
  }
  const std::uint64_t served_all = total.load();
  caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown);

  std::printf("in flight %d, %.1f s each, %zu CAF threads\n", in_flight, seconds,
              sys.scheduler().num_workers());
  std::printf("raw CAF request/response     %12.0f round trips/s\n", raw);
  std::printf("port -> scheduler -> no-op   %12.0f requests/s\n", served);
  std::printf("ratio                        %12.2fx raw CAF (goal >= 0.5x)\n", served / raw);
  std::printf("scheduling passes            %12.2f requests per pass\n",
              passes ? static_cast<double>(served_all) / static_cast<double>(passes) : 0.0);
  return 0;
}
