// The scheduler's decisions with explicit time: priority and preemption, the business-hours
// capacity windows, routing (GPU, CPU fallback, fallback model, edge), overload, deadlines,
// cancellation and drain.

#include "actors/scheduling/scheduler_policy.hpp"

#include <catch2/catch.hpp>

using namespace bastion::scheduling;
using namespace std::chrono_literals;

namespace {

constexpr local_time monday_10am{0, 10 * 60};
constexpr local_time monday_11pm{0, 23 * 60};
constexpr local_time saturday_noon{5, 12 * 60};

// Weekdays 08:00-20:00: 80% kept for production. Nights (20:00-08:00): production keeps 20%,
// batch may take the rest. Weekends: training (back-tests) may take 90%.
capacity_policy bank_policy() {
  capacity_window day{"business-hours", 0x1f, 8 * 60, 20 * 60, {}};
  day.shares.reserve = {0.8, 0.0, 0.0, 0.0};
  capacity_window night{"night", 0x1f, 20 * 60, 8 * 60, {}};
  night.shares.reserve = {0.2, 0.0, 0.0, 0.0};
  capacity_window weekend{"weekend", 0x60, 0, 24 * 60, {}};
  weekend.shares.reserve = {0.1, 0.0, 0.0, 0.0};
  weekend.shares.limit = {1.0, 1.0, 0.5, 0.9};
  return capacity_policy{{day, night, weekend}, window_shares{}};
}

worker_state worker(const std::string& id, worker_kind kind, std::size_t slots,
                    std::vector<std::string> models = {"smollm2"}) {
  return worker_state{id, kind, std::move(models), slots, true};
}

request_ticket ticket(std::uint64_t id, priority_class cls, std::string model = "smollm2") {
  request_ticket t;
  t.id = id;
  t.cls = cls;
  t.model = std::move(model);
  return t;
}

std::vector<std::uint64_t> started(const decisions& d) {
  std::vector<std::uint64_t> out;
  for (const auto& s : d.starts) out.push_back(s.request);
  return out;
}

}  // namespace

TEST_CASE("production overtakes queued batch work and preempts running batch work") {
  scheduler_policy p{policy_config{}};
  p.upsert_worker(worker("gpu-0", worker_kind::gpu, 1));
  REQUIRE(p.admit(ticket(1, priority_class::batch)).code == admit_code::admitted);
  CHECK(started(p.schedule(saturday_noon)) == std::vector<std::uint64_t>{1});
  REQUIRE(p.admit(ticket(2, priority_class::batch)).code == admit_code::admitted);
  REQUIRE(p.admit(ticket(3, priority_class::production)).code == admit_code::admitted);

  auto d = p.schedule(saturday_noon);
  REQUIRE(d.preempts.size() == 1);
  CHECK(d.preempts[0].request == 1);
  CHECK(d.preempts[0].worker == "gpu-0");
  CHECK(started(d) == std::vector<std::uint64_t>{3});
  CHECK(p.queued(priority_class::batch) == 2);  // 1 back at the front, then 2

  p.finished(3, 100ms);
  CHECK(started(p.schedule(saturday_noon)) == std::vector<std::uint64_t>{1});  // resumes first
  p.finished(1, 100ms);
  CHECK(started(p.schedule(saturday_noon)) == std::vector<std::uint64_t>{2});
}

TEST_CASE("interactive work does not preempt batch work; it waits") {
  scheduler_policy p{policy_config{}};
  p.upsert_worker(worker("gpu-0", worker_kind::gpu, 1));
  REQUIRE(p.admit(ticket(1, priority_class::batch)).code == admit_code::admitted);
  p.schedule(monday_10am);
  REQUIRE(p.admit(ticket(2, priority_class::interactive)).code == admit_code::admitted);
  auto d = p.schedule(saturday_noon);
  CHECK(d.preempts.empty());
  CHECK(d.starts.empty());
}

TEST_CASE("business hours keep 80% of capacity for production, nights lend it to batch") {
  policy_config cfg;
  cfg.capacity = bank_policy();
  REQUIRE_FALSE(cfg.capacity.validate());
  scheduler_policy p{cfg};
  p.upsert_worker(worker("gpu-0", worker_kind::gpu, 10));
  for (std::uint64_t id = 1; id <= 10; ++id)
    REQUIRE(p.admit(ticket(id, priority_class::batch)).code == admit_code::admitted);

  CHECK(p.window_name(monday_10am) == "business-hours");
  CHECK(p.schedule(monday_10am).starts.size() == 2);  // 20% of 10 slots, though 8 are idle
  CHECK(p.running(priority_class::batch) == 2);

  CHECK(p.window_name(monday_11pm) == "night");
  CHECK(p.schedule(monday_11pm).starts.size() == 6);  // up to 80% at night
  CHECK(p.running(priority_class::batch) == 8);

  // Production still gets its reserved 20% at night without preempting anything.
  for (std::uint64_t id = 100; id < 102; ++id)
    REQUIRE(p.admit(ticket(id, priority_class::production)).code == admit_code::admitted);
  auto d = p.schedule(monday_11pm);
  CHECK(d.preempts.empty());
  CHECK(d.starts.size() == 2);
}

TEST_CASE("weekends lend up to 90% to back-tests but limit batch to half") {
  policy_config cfg;
  cfg.capacity = bank_policy();
  scheduler_policy p{cfg};
  p.upsert_worker(worker("gpu-0", worker_kind::gpu, 10));
  for (std::uint64_t id = 1; id <= 10; ++id)
    REQUIRE(p.admit(ticket(id, priority_class::training)).code == admit_code::admitted);
  for (std::uint64_t id = 11; id <= 20; ++id)
    REQUIRE(p.admit(ticket(id, priority_class::batch)).code == admit_code::admitted);
  CHECK(p.window_name(saturday_noon) == "weekend");
  p.schedule(saturday_noon);
  CHECK(p.running(priority_class::batch) == 5);     // batch limit 50%
  CHECK(p.running(priority_class::training) == 4);  // the rest, less production's 10% reserve
}

TEST_CASE("capacity windows: local time, days and windows that wrap midnight") {
  // 2026-11-30 00:30 UTC is Monday 08:30 in UTC+08:00.
  const auto t = std::chrono::system_clock::time_point{std::chrono::seconds{1795998600}};
  const auto lt = to_local(t, std::chrono::hours{8});
  CHECK(lt.weekday == 0);
  CHECK(lt.minute == 8 * 60 + 30);
  const auto utc = to_local(t, std::chrono::minutes{0});
  CHECK(utc.weekday == 0);
  CHECK(utc.minute == 30);
  // 2026-12-05 15:00 UTC is Saturday 23:00 at +08:00, Saturday 10:00 at -05:00.
  const auto sat = std::chrono::system_clock::time_point{std::chrono::seconds{1796482800}};
  CHECK(to_local(sat, std::chrono::hours{8}).weekday == 5);
  CHECK(to_local(sat, std::chrono::hours{-5}).minute == 10 * 60);

  auto pol = bank_policy();
  CHECK(pol.window_name_at({1, 3 * 60}) == "night");    // Tuesday 03:00: Monday's night
  CHECK(pol.window_name_at({5, 3 * 60}) == "night");    // Saturday 03:00: Friday's night
  CHECK(pol.window_name_at({5, 9 * 60}) == "weekend");  // Saturday 09:00
  // Monday 03:00: the weekend ended at midnight and Sunday has no night window.
  CHECK(pol.window_name_at({0, 3 * 60}) == "default");
  CHECK(pol.window_name_at({0, 8 * 60}) == "business-hours");
}

TEST_CASE("a bad capacity policy is refused with the window and value named") {
  capacity_window w{"greedy", 0x1f, 0, 24 * 60, {}};
  w.shares.reserve = {0.8, 0.5, 0.0, 0.0};
  auto err = capacity_policy{{w}, {}}.validate();
  REQUIRE(err);
  CHECK_THAT(*err, Catch::Contains("greedy") && Catch::Contains("more than all capacity"));
  w.shares.reserve = {0.5, 0.0, 0.0, 0.0};
  w.shares.limit = {0.4, 1.0, 1.0, 1.0};
  CHECK_THAT(*capacity_policy({w}, {}).validate(), Catch::Contains("below its reserve"));
  w.shares.limit = {1.0, 1.0, 1.0, 1.5};
  CHECK_THAT(*capacity_policy({w}, {}).validate(),
             Catch::Contains("training") && Catch::Contains("outside [0, 1]"));
  w.shares.limit = {1.0, 1.0, 1.0, 1.0};
  w.start_minute = 1500;
  CHECK_THAT(*capacity_policy({w}, {}).validate(), Catch::Contains("minutes within a day"));
}

TEST_CASE("routing: GPU first, CPU workers of the same model only when no GPU is healthy") {
  policy_config cfg;
  cfg.fallback_model = {{"qwen2-7b", "smollm2"}};
  scheduler_policy p{cfg};
  p.upsert_worker(worker("gpu-0", worker_kind::gpu, 1, {"smollm2", "qwen2-7b"}));
  p.upsert_worker(worker("cpu-0", worker_kind::cpu, 4, {"smollm2"}));
  REQUIRE(p.admit(ticket(1, priority_class::interactive)).code == admit_code::admitted);
  REQUIRE(p.admit(ticket(2, priority_class::interactive)).code == admit_code::admitted);
  auto d = p.schedule(monday_10am);
  REQUIRE(d.starts.size() == 1);  // the GPU is healthy: request 2 waits for it, not for a CPU
  CHECK(d.starts[0].worker == "gpu-0");

  p.set_health("gpu-0", false);
  d = p.schedule(monday_10am);
  REQUIRE(d.starts.size() == 1);
  CHECK(d.starts[0].request == 2);
  CHECK(d.starts[0].worker == "cpu-0");
  CHECK_FALSE(d.starts[0].fallback_model);

  // No healthy worker has qwen2-7b: the configured fallback model runs, and says so.
  REQUIRE(p.admit(ticket(3, priority_class::interactive, "qwen2-7b")).code == admit_code::admitted);
  d = p.schedule(monday_10am);
  REQUIRE(d.starts.size() == 1);
  CHECK(d.starts[0].model == "smollm2");
  CHECK(d.starts[0].fallback_model);
  CHECK(d.starts[0].worker == "cpu-0");
}

TEST_CASE("routing: edge requests go to edge workers, others never do") {
  scheduler_policy p{policy_config{}};
  p.upsert_worker(worker("edge-0", worker_kind::edge, 2));
  p.upsert_worker(worker("gpu-0", worker_kind::gpu, 2));
  auto t = ticket(1, priority_class::production);
  t.edge = true;
  REQUIRE(p.admit(t).code == admit_code::admitted);
  REQUIRE(p.admit(ticket(2, priority_class::production)).code == admit_code::admitted);
  auto d = p.schedule(monday_10am);
  REQUIRE(d.starts.size() == 2);
  CHECK(d.starts[0].worker == "edge-0");
  CHECK(d.starts[1].worker == "gpu-0");
}

TEST_CASE("a request for a busy model does not block one for another model behind it") {
  scheduler_policy p{policy_config{}};
  p.upsert_worker(worker("gpu-a", worker_kind::gpu, 1, {"a"}));
  p.upsert_worker(worker("gpu-b", worker_kind::gpu, 1, {"b"}));
  REQUIRE(p.admit(ticket(1, priority_class::interactive, "a")).code == admit_code::admitted);
  REQUIRE(p.admit(ticket(2, priority_class::interactive, "a")).code == admit_code::admitted);
  REQUIRE(p.admit(ticket(3, priority_class::interactive, "b")).code == admit_code::admitted);
  CHECK(started(p.schedule(monday_10am)) == std::vector<std::uint64_t>{1, 3});
}

TEST_CASE("overload: a full queue refuses with a bounded retry-after, unknown models are named") {
  policy_config cfg;
  cfg.queue_max = {2, 2, 2, 2};
  scheduler_policy p{cfg};
  p.upsert_worker(worker("gpu-0", worker_kind::gpu, 1));
  REQUIRE(p.admit(ticket(1, priority_class::batch)).code == admit_code::admitted);
  REQUIRE(p.admit(ticket(2, priority_class::batch)).code == admit_code::admitted);
  auto r = p.admit(ticket(3, priority_class::batch));
  CHECK(r.code == admit_code::overloaded);
  CHECK(r.retry_after_ms >= 50);
  CHECK(r.retry_after_ms <= 30000);
  CHECK_THAT(r.message, Catch::Contains("batch queue is full"));
  // Another class still has room.
  CHECK(p.admit(ticket(4, priority_class::production)).code == admit_code::admitted);
  auto u = p.admit(ticket(5, priority_class::production, "gpt-9"));
  CHECK(u.code == admit_code::unknown_model);
  CHECK_THAT(u.message, Catch::Contains("gpt-9"));
}

TEST_CASE("deadlines expire queued requests only; cancellation finds queued and running ones") {
  scheduler_policy p{policy_config{}};
  p.upsert_worker(worker("gpu-0", worker_kind::gpu, 1));
  auto a = ticket(1, priority_class::interactive);
  a.deadline = 5s;
  auto b = ticket(2, priority_class::interactive);
  b.deadline = 5s;
  auto c = ticket(3, priority_class::interactive);
  c.deadline = 60s;
  REQUIRE(p.admit(a).code == admit_code::admitted);
  REQUIRE(p.admit(b).code == admit_code::admitted);
  REQUIRE(p.admit(c).code == admit_code::admitted);
  CHECK(started(p.schedule(monday_10am)) == std::vector<std::uint64_t>{1});
  CHECK(p.expire(4s).empty());
  CHECK(p.expire(6s) == std::vector<std::uint64_t>{2});  // 1 is running: the worker enforces it
  // A request queued later with an earlier deadline than every one queued before still expires
  // on time (expire() skips its walk only while no queued deadline can have passed).
  auto d = ticket(4, priority_class::interactive);
  d.deadline = 7s;
  REQUIRE(p.admit(d).code == admit_code::admitted);
  CHECK(p.expire(6500ms).empty());
  CHECK(p.expire(8s) == std::vector<std::uint64_t>{4});
  CHECK(p.expire(59s).empty());

  std::string where;
  CHECK(p.cancel(1, &where) == scheduler_policy::cancel_outcome::running);
  CHECK(where == "gpu-0");
  CHECK(p.cancel(3) == scheduler_policy::cancel_outcome::dequeued);
  CHECK(p.cancel(3) == scheduler_policy::cancel_outcome::not_found);
}

TEST_CASE("drain refuses new work and reports drained once everything finished") {
  scheduler_policy p{policy_config{}};
  p.upsert_worker(worker("gpu-0", worker_kind::gpu, 1));
  REQUIRE(p.admit(ticket(1, priority_class::interactive)).code == admit_code::admitted);
  p.schedule(monday_10am);
  p.start_drain();
  CHECK(p.admit(ticket(2, priority_class::production)).code == admit_code::draining);
  CHECK_FALSE(p.drained());
  p.finished(1, 10ms);
  CHECK(p.drained());
}

TEST_CASE("removing a worker hands back the requests it was running") {
  scheduler_policy p{policy_config{}};
  p.upsert_worker(worker("gpu-0", worker_kind::gpu, 2));
  p.upsert_worker(worker("gpu-1", worker_kind::gpu, 2));
  for (std::uint64_t id = 1; id <= 4; ++id)
    REQUIRE(p.admit(ticket(id, priority_class::interactive)).code == admit_code::admitted);
  CHECK(p.schedule(monday_10am).starts.size() == 4);
  auto orphans = p.remove_worker("gpu-0");
  CHECK(orphans.size() == 2);
  CHECK(p.running(priority_class::interactive) == 2);
  CHECK(p.total_slots() == 2);
}

TEST_CASE("re-registering a worker keeps the requests running on it accounted to it") {
  scheduler_policy p{policy_config{}};
  p.upsert_worker(worker("gpu-0", worker_kind::gpu, 1));
  for (std::uint64_t id = 1; id <= 3; ++id)
    REQUIRE(p.admit(ticket(id, priority_class::batch)).code == admit_code::admitted);
  CHECK(started(p.schedule(monday_10am)) == std::vector<std::uint64_t>{1});
  // The same worker registers again (unchanged): request 1 still holds its only slot.
  p.upsert_worker(worker("gpu-0", worker_kind::gpu, 1));
  CHECK(p.schedule(monday_10am).starts.empty());
  // Registered with a second slot: one more starts, not two.
  p.upsert_worker(worker("gpu-0", worker_kind::gpu, 2));
  CHECK(started(p.schedule(monday_10am)) == std::vector<std::uint64_t>{2});
  // A production request preempts the newest batch request, named on that worker.
  REQUIRE(p.admit(ticket(4, priority_class::production)).code == admit_code::admitted);
  auto d = p.schedule(monday_10am);
  REQUIRE(d.preempts.size() == 1);
  CHECK(d.preempts[0].request == 2);
  CHECK(d.preempts[0].worker == "gpu-0");
  CHECK(started(d) == std::vector<std::uint64_t>{4});
  // Finishing request 1 frees its slot on the re-registered worker for the requeued batch work.
  p.finished(1, 5ms);
  CHECK(started(p.schedule(monday_10am)) == std::vector<std::uint64_t>{2});
  CHECK(p.running(priority_class::batch) == 1);
  CHECK(p.running(priority_class::production) == 1);
}
