// Scheduler overhead: requests/s through the inference_port -> scheduler actor -> a no-op
// worker actor -> completion callback, against raw CAF request/response round trips between
// two actors measured in the same run, both with the same number of requests in flight and on
// the same actor system (same CAF threads).
//
// The machines this runs on are shared and noisy, so the two are measured in alternating
// rounds (raw, then served, `rounds` times), each preceded by a short warm-up; every round's
// pair and ratio is printed, then the median and the lowest ratio (the goal: at least
// 0.5x raw CAF). Each measurement stops its load and waits until nothing of it is in flight
// before the next one starts, so the two never overlap.
//
// Beside the wall-clock rates (the measure), each round also gives the process's CPU
// time per request for both paths: on a shared machine the share of the cores this process
// gets changes from second to second, and the CPU cost per request shows the serving path's
// own cost with less of that noise. (CAF's idle workers poll before they sleep, which both
// paths pay alike.)
//
//   build/bench/scheduler_overhead_bench [seconds per measurement, default 2] [in flight, 64]
//                                        [rounds, 5] [served: only the serving path, to profile]

#include "actors/scheduler/scheduler_actor.hpp"
#include "actors/serving/serving_port.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
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

/// One measured load: a fixed number of requests kept in flight until `stop`; `outstanding`
/// falls to zero once every request of the load has ended after the stop.
struct load {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> total{0};
  std::atomic<int> outstanding{0};

  /// Called when a request ends: true when the caller should send the next one.
  bool ended() {
    total.fetch_add(1, std::memory_order_relaxed);
    if (!stop.load(std::memory_order_relaxed)) return true;
    outstanding.fetch_sub(1, std::memory_order_release);
    return false;
  }
};

caf::behavior echo(caf::event_based_actor*) {
  return {[](std::uint64_t x) { return x; }};
}

// Raw CAF: keeps the load's requests outstanding to `target`, each reply sending the next.
void send_raw(caf::event_based_actor* self, caf::actor target, load* l) {
  self->request(target, caf::infinite, std::uint64_t{1}).then([=](std::uint64_t) {
    if (l->ended()) send_raw(self, target, l);
  });
}

caf::behavior raw_driver(caf::event_based_actor* self, caf::actor target, int in_flight, load* l) {
  for (int i = 0; i < in_flight; ++i) send_raw(self, target, l);
  return {[](caf::unit_t) {}};
}

// The serving path's client: each completion submits the next request (its callback holds one
// pointer, as the raw driver's continuation holds its few).
struct client {
  serving_port* port;
  load* l;
  std::atomic<std::uint64_t>* ids;
  void submit_one() {
    gateway::inference_request req;
    req.request_id = "r" + std::to_string(ids->fetch_add(1));
    req.model = "m";
    req.input = std::string{"x"};
    port->submit(std::move(req), nullptr, [this](gateway::completion) {
      if (l->ended()) submit_one();
    });
  }
};

double process_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// Requests per wall-clock second, and per CPU second of the whole process.
struct rates {
  double wall = 0;
  double cpu = 0;
};

rates rate(load& l, double seconds) {
  const auto t0 = steady::now();
  const double c0 = process_cpu_s();
  const auto n0 = l.total.load();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const auto n1 = l.total.load();
  const double dc = process_cpu_s() - c0;
  const double dt = std::chrono::duration<double>(steady::now() - t0).count();
  const auto n = static_cast<double>(n1 - n0);
  return {n / dt, dc > 0 ? n / dc : 0.0};
}

/// Stops the load and waits (bounded) until none of its requests is in flight.
void stop_and_settle(load& l) {
  l.stop = true;
  const auto give_up = steady::now() + std::chrono::seconds{10};
  while (l.outstanding.load(std::memory_order_acquire) > 0 && steady::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  if (l.outstanding.load() > 0) {
    std::fprintf(stderr, "a load did not settle within 10 s\n");
    std::exit(1);
  }
}

constexpr double warm_up_s = 0.3;

rates measure_raw(caf::actor_system& sys, int in_flight, double seconds) {
  load l;
  l.outstanding = in_flight;
  auto target = sys.spawn(echo);
  auto driver = sys.spawn(raw_driver, target, in_flight, &l);
  rate(l, warm_up_s);
  const auto r = rate(l, seconds);
  stop_and_settle(l);
  caf::anon_send_exit(driver, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
  return r;
}

rates measure_served(serving_port& port, int in_flight, double seconds,
                     std::atomic<std::uint64_t>& ids) {
  load l;
  l.outstanding = in_flight;
  client c{&port, &l, &ids};
  for (int i = 0; i < in_flight; ++i) c.submit_one();
  rate(l, warm_up_s);
  const auto r = rate(l, seconds);
  stop_and_settle(l);
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const int in_flight = argc > 2 ? std::atoi(argv[2]) : 64;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 5;
  const bool served_only = argc > 4 && std::strcmp(argv[4], "served") == 0;
  if (seconds <= 0 || in_flight <= 0 || rounds <= 0) {
    std::fprintf(stderr, "usage: %s [seconds > 0] [in flight > 0] [rounds > 0] [served]\n",
                 argv[0]);
    return 2;
  }
  caf::actor_system_config cfg;
  // CAF's default is max(cores, 4) scheduler threads; BASTION_BENCH_CAF_THREADS sets another
  // count for both measurements (printed in the header line).
  if (const char* t = std::getenv("BASTION_BENCH_CAF_THREADS"); t && std::atoi(t) > 0)
    cfg.set("scheduler.max-threads", static_cast<std::size_t>(std::atoi(t)));
  caf::actor_system sys{cfg};

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
  std::atomic<std::uint64_t> ids{0};

  std::printf("in flight %d, %.1f s each, %d rounds, %zu CAF threads\n", in_flight, seconds, rounds,
              sys.scheduler().num_workers());
  std::printf(
      "round   raw CAF round trips/s   port->scheduler->no-op requests/s   ratio"
      "   | per CPU-s: raw     served   ratio\n");
  std::vector<double> ratios;
  std::vector<double> cpu_ratios;
  for (int i = 0; i < rounds; ++i) {
    const auto raw = served_only ? rates{} : measure_raw(sys, in_flight, seconds);
    const auto served = measure_served(port, in_flight, seconds, ids);
    const double ratio = raw.wall > 0 ? served.wall / raw.wall : 0.0;
    const double cpu_ratio = raw.cpu > 0 ? served.cpu / raw.cpu : 0.0;
    std::printf("%5d   %21.0f   %33.0f   %5.2fx  | %14.0f %10.0f   %5.2fx\n", i + 1, raw.wall,
                served.wall, ratio, raw.cpu, served.cpu, cpu_ratio);
    std::fflush(stdout);
    if (raw.wall > 0) ratios.push_back(ratio);
    if (raw.cpu > 0) cpu_ratios.push_back(cpu_ratio);
  }

  // How many requests one scheduling pass placed, over the whole run.
  std::uint64_t passes = 0;
  {
    caf::scoped_actor self{sys};
    self->request(scheduler, caf::infinite, snapshot_atom::value)
        .receive([&](const scheduler_snapshot& s) { passes = s.passes; }, [](const caf::error&) {});
  }
  caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(scheduler, caf::exit_reason::user_shutdown);

  if (!ratios.empty()) {
    std::printf("ratio median %.2fx, min %.2fx raw CAF (goal >= 0.5x)\n", median(ratios),
                *std::min_element(ratios.begin(), ratios.end()));
  }
  if (!cpu_ratios.empty()) {
    std::printf("per CPU second: ratio median %.2fx, min %.2fx raw CAF\n", median(cpu_ratios),
                *std::min_element(cpu_ratios.begin(), cpu_ratios.end()));
  }
  std::printf("scheduling passes %.2f requests per pass\n",
              passes ? static_cast<double>(ids.load()) / static_cast<double>(passes) : 0.0);
  return 0;
}
