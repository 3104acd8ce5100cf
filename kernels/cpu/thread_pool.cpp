#include "kernels/cpu/thread_pool.hpp"

#include <cassert>
#include <chrono>

namespace bastion::kernels::cpu {
namespace {

void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

thread_pool::thread_pool(int threads, int spin_us) : threads_(threads), spin_us_(spin_us) {
  assert(threads >= 1 && threads <= threads_max && "thread_pool: threads out of range");
  workers_.reserve(static_cast<std::size_t>(threads - 1));
  for (int t = 1; t < threads; ++t) workers_.emplace_back([this, t] { worker_main(t); });
}

thread_pool::~thread_pool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void thread_pool::work(int thread) noexcept {
  for (;;) {
    const std::int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= tasks_) return;
    fn_(ctx_, task, thread);
  }
}

void thread_pool::run_erased(std::int64_t tasks, task_fn fn, void* ctx) {
  if (tasks <= 0) return;
  if (workers_.empty() || tasks == 1) {
    for (std::int64_t t = 0; t < tasks; ++t) fn(ctx, t, 0);
    return;
  }
  fn_ = fn;
  ctx_ = ctx;
  tasks_ = tasks;
  next_task_.store(0, std::memory_order_relaxed);
  workers_busy_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  bool any_sleeping = false;
  {
    // Under the mutex, so a worker deciding to sleep either sees the new generation or is
    // counted in sleepers_ and woken below.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
    any_sleeping = sleepers_ > 0;
  }
  if (any_sleeping) wake_.notify_all();
  work(0);
  // The workers are finishing their last task; yield now and then in case one was preempted.
  for (int spins = 0; workers_busy_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins % 1024 == 1023)
      std::this_thread::yield();
    else
      cpu_relax();
  }
}

void thread_pool::worker_main(int thread) noexcept {
  std::uint64_t seen = 0;
  for (;;) {
    const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us_);
    std::uint64_t now_generation;
    int spins = 0;
    while ((now_generation = generation_.load(std::memory_order_acquire)) == seen) {
      if (stop_.load(std::memory_order_acquire)) return;
      if (++spins % 64 != 0 || std::chrono::steady_clock::now() < spin_until) {
        cpu_relax();
        continue;
      }
      std::unique_lock<std::mutex> lock(mutex_);
      ++sleepers_;
      wake_.wait(lock, [&] {
        return generation_.load(std::memory_order_acquire) != seen ||
               stop_.load(std::memory_order_acquire);
      });
      --sleepers_;
    }
    seen = now_generation;
    work(thread);
    workers_busy_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace bastion::kernels::cpu
