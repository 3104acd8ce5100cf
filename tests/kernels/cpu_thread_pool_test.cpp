// kernels/cpu/thread_pool: every task runs exactly once per run, on a valid thread index, and
// run() returns only after all of them; the pool survives many short runs (the decode pattern)
// and idle gaps long enough for its workers to fall asleep.

#include "kernels/cpu/thread_pool.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

using bastion::kernels::cpu::thread_pool;

TEST_CASE("thread_pool runs every task exactly once, on a valid thread") {
  for (int threads : {1, 2, 3, 8}) {
    thread_pool pool{threads};
    CHECK(pool.threads() == threads);
    for (std::int64_t tasks : {0, 1, 2, 7, 100, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<std::size_t>(tasks));
      std::atomic<int> bad_thread{0};
      pool.run(tasks, [&](std::int64_t t, int thread) {
        hits[static_cast<std::size_t>(t)].fetch_add(1);
        if (thread < 0 || thread >= threads) bad_thread.fetch_add(1);
      });
      INFO("threads " << threads << " tasks " << tasks);
      for (auto& h : hits) CHECK(h.load() == 1);
      CHECK(bad_thread.load() == 0);
    }
  }
}

TEST_CASE("thread_pool: many short runs in a row, then runs after the workers slept") {
  thread_pool pool{2, /*spin_us=*/50};
  std::vector<int> out(64);
  long long total = 0;
  for (int run = 0; run < 5000; ++run) {
    pool.run(static_cast<std::int64_t>(out.size()), [&](std::int64_t t, int) {
      out[static_cast<std::size_t>(t)] = run + static_cast<int>(t);
    });
    // Results are visible to the caller when run() returns.
    total += out[0] + out[63] - 2 * run - 63;
  }
  CHECK(total == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // workers are asleep now
  std::atomic<int> done{0};
  pool.run(50, [&](std::int64_t, int) { done.fetch_add(1); });
  CHECK(done.load() == 50);
}

TEST_CASE("thread_pool: a slow task holds run() until it ends") {
  thread_pool pool{2};
  std::atomic<bool> slow_done{false};
  pool.run(4, [&](std::int64_t t, int) {
    if (t == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      slow_done.store(true);
    }
  });
  CHECK(slow_done.load());
}

TEST_CASE("thread_pool: back-to-back runs of different sizes never run a task twice") {
  // More threads than cores, so workers are preempted mid-claim: a late worker must not take a
  // task of the next run (that would run it twice and leave run() waiting forever).
  thread_pool pool{4, /*spin_us=*/20};
  std::vector<std::atomic<int>> hits(16);
  int wrong = 0;
  for (int run = 0; run < 20000; ++run) {
    const std::int64_t tasks = 1 + run % 9;
    for (auto& h : hits) h.store(0, std::memory_order_relaxed);
    pool.run(tasks, [&](std::int64_t t, int) { hits[static_cast<std::size_t>(t)].fetch_add(1); });
    for (std::int64_t t = 0; t < 16; ++t)
      wrong += hits[static_cast<std::size_t>(t)].load() != (t < tasks ? 1 : 0);
  }
  CHECK(wrong == 0);
}
