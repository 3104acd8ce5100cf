#include "actors/serving/local_serving.hpp"

#include "actors/scheduler/scheduler_actor.hpp"
#include "actors/serving/serving_port.hpp"
#include "actors/worker/worker_actor.hpp"
#include "actors/worker/worker_backend.hpp"
#include "actors/worker/worker_step_loop.hpp"
#include "runtime/clock/clock.hpp"

#include <caf/actor_system.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <thread>

namespace bastion::serving {

namespace {

scheduling::worker_kind parse_kind(const std::string& k) {
  if (k == "gpu") return scheduling::worker_kind::gpu;
  if (k == "edge") return scheduling::worker_kind::edge;
  return scheduling::worker_kind::cpu;  // the config refuses anything else
}

scheduler_settings settings_from(const config::node_config& cfg) {
  scheduler_settings s;
  const auto& sc = cfg.scheduler;
  for (std::size_t c = 0; c < scheduling::class_count; ++c) s.policy.queue_max[c] = sc.queue_max[c];
  for (const auto& m : cfg.models)
    if (!m.fallback.empty()) s.policy.fallback_model[m.id] = m.fallback;
  s.policy.retry_after_min = std::chrono::milliseconds{sc.retry_after_ms_min};
  s.policy.retry_after_max = std::chrono::milliseconds{sc.retry_after_ms_max};
  std::vector<scheduling::capacity_window> windows;
  for (const auto& w : sc.windows) {
    scheduling::capacity_window cw;
    cw.name = w.name;
    cw.days_mask = w.days_mask;
    cw.start_minute = w.start_minute;
    cw.end_minute = w.end_minute;
    for (std::size_t c = 0; c < scheduling::class_count; ++c) {
      cw.shares.reserve[c] = w.reserve[c];
      cw.shares.limit[c] = w.limit[c];
    }
    windows.push_back(std::move(cw));
  }
  s.policy.capacity = scheduling::capacity_policy(std::move(windows), {});
  s.deadline_default = std::chrono::milliseconds{sc.deadline_ms_default};
  s.utc_offset = std::chrono::minutes{sc.utc_offset_minutes};
  return s;
}

class local_serving_impl final : public local_serving {
 public:
  local_serving_impl(caf::actor_system& sys, metrics::registry& reg)
      : sys_(sys), metrics_(std::make_unique<serving_metrics>(reg)) {}

  ~local_serving_impl() override {
    drain(std::chrono::milliseconds{0});
    // Stopping the step threads ends (and reports) whatever is still running there.
    for (auto& loop : loops_) loop->stop();
    // Wait until every actor is gone: they point at the clock and the metrics owned here.
    caf::scoped_actor self{sys_};
    std::vector<caf::actor> all;
    all.push_back(caf::actor_cast<caf::actor>(scheduler_));
    for (auto& w : workers_) all.push_back(caf::actor_cast<caf::actor>(w));
    for (auto& a : all) {
      self->monitor(a);
      self->send_exit(a, caf::exit_reason::user_shutdown);
    }
    for (std::size_t i = 0; i < all.size(); ++i)
      self->receive([](const caf::down_msg&) {}, caf::after(std::chrono::seconds{10}) >> [] {});
  }

  caf::error start(const config::node_config& cfg) {
    scheduler_ = sys_.spawn(scheduler_actor_impl, settings_from(cfg), &clock_, metrics_.get());
    std::vector<gateway::model_info> served;
    const auto created = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(clock_.wall()).count());
    for (const auto& w : cfg.workers) {
      std::vector<worker::worker_model_spec> specs;
      for (const auto& id : w.models) {
        auto m = std::find_if(cfg.models.begin(), cfg.models.end(),
                              [&](const config::model_section& s) { return s.id == id; });
        if (m == cfg.models.end())
          return caf::make_error(
              caf::sec::invalid_argument,
              "worker '" + w.id + "' names model '" + id + "', which the config does not define");
        specs.push_back({m->id, m->path, m->context_tokens_max});
      }
      std::string load_error;
      auto be = worker::make_worker_backend(w);
      // A GPU worker without its device starts unhealthy (its models fall back to CPU
      // workers); a CPU backend that cannot be made is a misconfiguration: refused at start.
      if (!be.backend && w.kind != "gpu")
        return caf::make_error(caf::sec::invalid_argument, be.error);
      worker_metrics_.push_back(std::make_unique<worker_metrics>(metrics_->registry(), w.id));
      metrics_->registry()
          .get_gauge("bastion_worker_info",
                     "This node's workers, 1 each, with their kind and backend (cpu, cuda:0, "
                     "cuda:0+1: the devices a worker runs on)",
                     {{"worker", w.id},
                      {"kind", w.kind},
                      {"backend", be.name.empty() ? std::string{"none"} : be.name}})
          .set(1);
      worker::step_loop_settings ss;
      ss.worker_id = w.id;
      ss.kind = w.kind;
      ss.batch_max = std::max<std::uint32_t>(1, w.batch_max);
      ss.kv_blocks = std::max<std::uint32_t>(1, w.kv_blocks);
      ss.inbox_max = static_cast<std::size_t>(ss.batch_max) * 4 + 16;
      ss.threads = be.threads;
      ss.recovery_backoff = std::chrono::milliseconds{w.recovery_backoff_ms};
      ss.recovery_backoff_max = std::chrono::milliseconds{w.recovery_backoff_ms_max};
      ss.step_stall_limit = std::chrono::milliseconds{w.step_stall_ms};
      auto sched = caf::actor_cast<caf::actor>(scheduler_);
      worker::worker_reports reports;
      reports.finished = [sched](std::vector<finished_report> batch) {
        caf::anon_send(sched, finished_atom::value, std::move(batch));
      };
      reports.preempted = [sched](std::uint64_t ticket) {
        caf::anon_send(sched, preempted_atom::value, ticket);
      };
      reports.health = [sched, id = w.id](bool healthy, const std::string& reason) {
        caf::anon_send(sched, health_atom::value, id, healthy, reason);
      };
      const bool backend_ok = be.error.empty();
      std::shared_ptr<worker::worker_step_loop> loop =
          worker::worker_step_loop::create(ss, specs, std::move(be), clock_, std::move(reports),
                                           worker_metrics_.back().get(), load_error);
      if (!loop) return caf::make_error(caf::sec::runtime_error, load_error);
      auto handle = sys_.spawn(worker_actor_impl, loop, sched);
      scheduling::worker_state ws;
      ws.id = w.id;
      ws.kind = parse_kind(w.kind);
      ws.models = w.models;
      ws.slots = static_cast<std::size_t>(ss.batch_max);
      ws.healthy = backend_ok;
      caf::anon_send(scheduler_, register_atom::value, worker_registration{ws, handle});
      loops_.push_back(std::move(loop));
      workers_.push_back(handle);
      for (const auto& spec : specs) {
        const auto seen = std::any_of(served.begin(), served.end(),
                                      [&](const auto& mi) { return mi.id == spec.id; });
        if (!seen)
          served.push_back(
              {spec.id, static_cast<std::uint32_t>(spec.context_tokens_max), "bastion", created});
      }
    }
    port_ = std::make_unique<serving_port>(scheduler_, cfg.node.site, std::move(served),
                                           metrics_.get());
    return caf::none;
  }

  gateway::inference_port& port() override { return *port_; }

  serving_snapshot snapshot(std::chrono::milliseconds timeout) override {
    serving_snapshot out;
    caf::scoped_actor self{sys_};
    self->request(scheduler_, timeout, snapshot_atom::value)
        .receive(
            [&](const scheduler_snapshot& s) {
              for (std::size_t c = 0; c < scheduling::class_count && c < s.queued.size(); ++c) {
                out.queued[c] = s.queued[c];
                out.running[c] = s.running[c];
              }
              out.capacity_window = s.capacity_window;
            },
            [](const caf::error&) {});
    // The step loops publish their state under a lock: no need to ask their actors.
    for (const auto& loop : loops_) out.workers.push_back(loop->snapshot());
    return out;
  }

  bool drain(std::chrono::milliseconds timeout) override {
    caf::scoped_actor self{sys_};
    const auto until = std::chrono::steady_clock::now() + timeout;
    bool cancel_all = timeout.count() == 0;
    while (true) {
      bool drained = false;
      self->request(scheduler_, std::chrono::seconds{5}, drain_atom::value, cancel_all)
          .receive([&](bool d) { drained = d; }, [](const caf::error&) {});
      if (drained) return true;
      if (cancel_all) return false;
      if (std::chrono::steady_clock::now() >= until) {
        cancel_all = true;  // out of time: cancel what is left, and say it did not drain
        self->request(scheduler_, std::chrono::seconds{5}, drain_atom::value, true)
            .receive([](bool) {}, [](const caf::error&) {});
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
  }

  caf::actor scheduler() const override { return caf::actor_cast<caf::actor>(scheduler_); }

 private:
  caf::actor_system& sys_;
  system_clock_source clock_;
  std::unique_ptr<serving_metrics> metrics_;
  std::vector<std::unique_ptr<worker_metrics>> worker_metrics_;
  scheduler_actor scheduler_;
  std::vector<std::shared_ptr<worker::worker_step_loop>> loops_;
  std::vector<worker_actor> workers_;
  std::unique_ptr<serving_port> port_;
};

}  // namespace

caf::expected<std::unique_ptr<local_serving>> local_serving::start(caf::actor_system& sys,
                                                                   const config::node_config& cfg,
                                                                   metrics::registry& reg) {
  auto impl = std::make_unique<local_serving_impl>(sys, reg);
  if (auto err = impl->start(cfg)) return err;
  return std::unique_ptr<local_serving>(std::move(impl));
}

}  // namespace bastion::serving
