#pragma once
// A fixed set of threads that run the tasks of one operation together (a parallel for).
// The caller of run() is one of the threads, so a pool of 1 has no workers and runs inline.
//
// Waiting: between operations a worker spins (with a pause instruction, yielding the core now
// and then) for spin_us, then sleeps on a condition variable. A decode step issues hundreds of
// small operations a few microseconds apart; a wake-up through the kernel costs tens of
// microseconds each, so the spin is what lets two threads beat one on small matrices. Idle
// pools sleep.
//
// Shared cores: run() waits for the tasks, not for the workers. A worker that the OS has not
// scheduled takes no task (the others take them all) and is not waited for; only a task
// already started is. Tasks are claimed with one compare-and-swap on (generation, task count,
// next task), so a worker that wakes late cannot take a task of a run that is over.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace bastion::kernels::cpu {

class thread_pool {
 public:
  static constexpr int threads_max = 256;
  /// Bound on the tasks of one run (the claim word holds counts in 20 bits).
  static constexpr std::int64_t tasks_max = (std::int64_t{1} << 20) - 1;

  /// REQUIRES: 1 <= threads <= threads_max. Starts threads - 1 workers.
  explicit thread_pool(int threads, int spin_us = 200);
  /// Stops and joins the workers. REQUIRES: no run() in progress.
  ~thread_pool();
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  int threads() const noexcept { return threads_; }

  /// Calls body(task, thread) for every task in [0, tasks), each exactly once, spread over the
  /// threads (thread in [0, threads()), 0 is the caller); returns when all calls have returned.
  /// Tasks are handed out in order, one at a time, so faster threads take more of them.
  /// REQUIRES: tasks <= tasks_max; body does not throw and does not call run() on this pool;
  /// one run() at a time.
  template <class Body>
  void run(std::int64_t tasks, Body&& body) {
    run_erased(
        tasks,
        [](void* ctx, std::int64_t task, int thread) {
          (*static_cast<std::remove_reference_t<Body>*>(ctx))(task, thread);
        },
        &body);
  }

 private:
  using task_fn = void (*)(void* ctx, std::int64_t task, int thread);

  void run_erased(std::int64_t tasks, task_fn fn, void* ctx);
  void work(std::uint32_t generation, int thread) noexcept;
  void worker_main(int thread) noexcept;

  const int threads_;
  const int spin_us_;
  // The current run's function; written before claim_ opens the run. A worker reads them only
  // between seeing an open claim of the run and claiming a task of it, and its claim succeeds
  // only while the run still has unclaimed tasks, so the next run cannot have written them yet.
  std::atomic<task_fn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  // The claim word: generation (24 bits) | task count (20 bits) | next task (20 bits). One
  // compare-and-swap claims a task and proves the run is still the one whose tasks were read.
  std::atomic<std::uint64_t> claim_{0};
  std::atomic<std::int64_t> tasks_done_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;  // guards sleepers_ and the sleep/wake hand-off
  std::condition_variable wake_;
  int sleepers_ = 0;
  std::vector<std::thread> workers_;  // last: joined before the state above is destroyed
};

}  // namespace bastion::kernels::cpu
