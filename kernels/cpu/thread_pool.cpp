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

constexpr std::uint64_t field_mask = (std::uint64_t{1} << 20) - 1;

std::uint32_t generation_of(std::uint64_t claim) noexcept {
  return static_cast<std::uint32_t>(claim >> 40);
}
std::int64_t tasks_of(std::uint64_t claim) noexcept {
  return static_cast<std::int64_t>((claim >> 20) & field_mask);
}
std::int64_t next_of(std::uint64_t claim) noexcept {
  return static_cast<std::int64_t>(claim & field_mask);
}
std::uint64_t make_claim(std::uint32_t generation, std::int64_t tasks) noexcept {
  return (static_cast<std::uint64_t>(generation & 0xffffffu) << 40) |
         (static_cast<std::uint64_t>(tasks) << 20);
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

// Takes tasks of run `generation` until none is left or another run has begun.
void thread_pool::work(std::uint32_t generation, int thread) noexcept {
  std::uint64_t claim = claim_.load(std::memory_order_acquire);
  for (;;) {
    if (generation_of(claim) != generation || next_of(claim) >= tasks_of(claim)) return;
    const task_fn fn = fn_.load(std::memory_order_relaxed);
    void* const ctx = ctx_.load(std::memory_order_relaxed);
    if (!claim_.compare_exchange_weak(claim, claim + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      continue;
    fn(ctx, next_of(claim), thread);
    tasks_done_.fetch_add(1, std::memory_order_acq_rel);
    claim = claim_.load(std::memory_order_acquire);
  }
}

void thread_pool::run_erased(std::int64_t tasks, task_fn fn, void* ctx) {
  assert(tasks <= tasks_max && "thread_pool: too many tasks in one run");
  if (tasks <= 0) return;
  if (workers_.empty() || tasks == 1) {
    for (std::int64_t t = 0; t < tasks; ++t) fn(ctx, t, 0);
    return;
  }
  fn_.store(fn, std::memory_order_relaxed);
  ctx_.store(ctx, std::memory_order_relaxed);
  tasks_done_.store(0, std::memory_order_relaxed);
  const std::uint32_t generation =
      (generation_of(claim_.load(std::memory_order_relaxed)) + 1) & 0xffffffu;
  bool any_sleeping = false;
  {
    // Under the mutex, so a worker deciding to sleep either sees the new generation or is
    // counted in sleepers_ and woken below.
    std::lock_guard<std::mutex> lock(mutex_);
    claim_.store(make_claim(generation, tasks), std::memory_order_release);
    any_sleeping = sleepers_ > 0;
  }
  if (any_sleeping) wake_.notify_all();
  work(generation, 0);
  // Every task is claimed; wait for those other threads are still running.
  for (int spins = 0; tasks_done_.load(std::memory_order_acquire) != tasks; ++spins) {
    if (spins % 256 == 255)
      std::this_thread::yield();
    else
      cpu_relax();
  }
}

void thread_pool::worker_main(int thread) noexcept {
  std::uint32_t seen = 0;
  for (;;) {
    const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us_);
    std::uint32_t now_generation;
    int spins = 0;
    while ((now_generation = generation_of(claim_.load(std::memory_order_acquire))) == seen) {
      if (stop_.load(std::memory_order_acquire)) return;
      ++spins;
      if (spins % 64 != 0) {
        cpu_relax();
        continue;
      }
      if (std::chrono::steady_clock::now() < spin_until) {
        std::this_thread::yield();  // let a thread that has work use this core
        continue;
      }
      std::unique_lock<std::mutex> lock(mutex_);
      ++sleepers_;
      wake_.wait(lock, [&] {
        return generation_of(claim_.load(std::memory_order_acquire)) != seen ||
               stop_.load(std::memory_order_acquire);
      });
      --sleepers_;
    }
    seen = now_generation;
    work(now_generation, thread);
  }
}

}  // namespace bastion::kernels::cpu
