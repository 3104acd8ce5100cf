// Recovery of an unhealthy worker, without a model: the backoff between probes doubles up to
// its cap and starts again after a recovery; the canary passes on a working backend, fails
// while the backend fails (a backend that fails N times, then works) or computes garbage. A
// device call is overdue (stall_detector) only past its limit, and is given up on once.

#include "actors/worker/worker_recovery.hpp"
#include "actors/worker/worker_stall.hpp"
#include "kernels/cpu/cpu_backend.hpp"
#include "tests/actors/flaky_backend.hpp"

#include <catch2/catch.hpp>

using namespace bastion;
using namespace std::chrono_literals;

TEST_CASE("the probe backoff doubles after each failed probe up to its cap") {
  worker::recovery_backoff b{100ms, 350ms};
  const std::chrono::nanoseconds t0 = 1000s;
  CHECK_FALSE(b.waiting());
  CHECK_FALSE(b.probe_due(t0));
  b.failed(t0);  // the failing step
  CHECK(b.waiting());
  CHECK_FALSE(b.probe_due(t0 + 99ms));
  CHECK(b.probe_due(t0 + 100ms));
  b.failed(t0 + 100ms);  // probe 1 fails: 200 ms
  CHECK(b.next_probe() == t0 + 300ms);
  b.failed(t0 + 300ms);  // probe 2 fails: 400 ms capped at 350
  CHECK(b.next_probe() == t0 + 650ms);
  b.failed(t0 + 650ms);  // probe 3 fails: still the cap
  CHECK(b.next_probe() == t0 + 1000ms);
  CHECK(b.failed_probes() == 3);
  b.recovered();
  CHECK_FALSE(b.waiting());
  CHECK_FALSE(b.probe_due(t0 + 2000ms));
  CHECK(b.failed_probes() == 0);
  b.failed(t0 + 5000ms);  // a later fault starts from the initial backoff again
  CHECK(b.next_probe() == t0 + 5100ms);
}

TEST_CASE("the canary fails while the backend fails and passes once it works again") {
  auto cpu = kernels::make_cpu_backend();
  test::flaky_backend be{std::move(cpu)};
  CHECK(worker::probe_backend(be));
  be.fail_next(3);
  int failed = 0;
  for (int probe = 0; probe < 10 && !worker::probe_backend(be); ++probe) ++failed;
  CHECK(failed == 3);
  CHECK(be.refused() == 3);
  be.set_broken(true);
  const auto st = worker::probe_backend(be);
  CHECK_FALSE(st);
  CHECK(st.code() == kernels::status_code::device_error);
  CHECK_THAT(st.message(), Catch::Contains("injected fault"));
}

TEST_CASE("the canary catches a backend that computes wrong values") {
  test::flaky_backend be{kernels::make_cpu_backend()};
  be.set_corrupt(true);
  const auto st = worker::probe_backend(be);
  CHECK_FALSE(st);
  CHECK_THAT(st.message(), Catch::Contains("canary product gave 12") && Catch::Contains("not 11"));
}

TEST_CASE("a device call is overdue only past the limit and only until it is given up on") {
  worker::stall_detector d{5s};
  const std::chrono::nanoseconds t0 = 1000s;
  CHECK_FALSE(d.overdue(t0));  // not inside a call
  d.enter(t0, "a step of model 'm'");
  CHECK(d.inside());
  CHECK_FALSE(d.overdue(t0 + 5s));  // at the limit: not yet
  const auto late = d.overdue(t0 + 7500ms);
  REQUIRE(late);
  CHECK(*late == "a step of model 'm' has not returned for 7.5 s");
  CHECK_FALSE(d.stalled());
  d.give_up();
  CHECK(d.stalled());
  CHECK_FALSE(d.overdue(t0 + 60s));  // given up on once, reported once
  CHECK(d.leave());                  // it came back: its results are dropped
  CHECK_FALSE(d.inside());
  CHECK_FALSE(d.stalled());
  // The next call starts afresh, and one that returns in time is kept.
  d.enter(t0 + 61s, "the probe of cpu");
  CHECK_FALSE(d.overdue(t0 + 62s));
  CHECK_FALSE(d.leave());
}

TEST_CASE("without a limit no call is ever overdue") {
  worker::stall_detector d{0s};
  d.enter(1s, "a step");
  CHECK_FALSE(d.overdue(std::chrono::hours{1000}));
  CHECK_FALSE(d.leave());
}
