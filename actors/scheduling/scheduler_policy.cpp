#include "actors/scheduling/scheduler_policy.hpp"

#include <algorithm>
#include <cassert>

namespace bastion::scheduling {

const char* to_string(worker_kind k) noexcept {
  switch (k) {
    case worker_kind::gpu:
      return "gpu";
    case worker_kind::cpu:
      return "cpu";
    case worker_kind::edge:
      return "edge";
  }
  return "unknown";
}

scheduler_policy::scheduler_policy(policy_config cfg) : cfg_(std::move(cfg)) {}

void scheduler_policy::upsert_worker(worker_state w) {
  // Replacing keeps the record (and its running count), which running entries point at.
  auto id = w.id;
  workers_[std::move(id)].state = std::move(w);
}

void scheduler_policy::set_health(const std::string& worker, bool healthy) {
  if (auto it = workers_.find(worker); it != workers_.end()) it->second.state.healthy = healthy;
}

std::vector<std::uint64_t> scheduler_policy::remove_worker(const std::string& worker) {
  std::vector<std::uint64_t> orphans;
  const auto w = workers_.find(worker);
  if (w == workers_.end()) return orphans;
  for (auto it = running_.begin(); it != running_.end();) {
    if (it->second.worker == &w->second) {
      orphans.push_back(it->first);
      --running_by_class_[static_cast<std::size_t>(it->second.ticket.cls)];
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  workers_.erase(w);
  return orphans;
}

std::size_t scheduler_policy::queued_total() const noexcept {
  std::size_t n = 0;
  for (const auto& q : queues_) n += q.size();
  return n;
}

std::size_t scheduler_policy::total_slots() const noexcept {
  std::size_t n = 0;
  for (const auto& [id, w] : workers_)
    if (w.state.healthy) n += w.state.slots;
  return n;
}

bool scheduler_policy::serves(const worker_state& w, const std::string& model) {
  return std::find(w.models.begin(), w.models.end(), model) != w.models.end();
}

std::uint32_t scheduler_policy::retry_after_ms(priority_class c) const {
  // Time for the work ahead to drain through the slots we have, bounded both ways.
  const double ahead = static_cast<double>(queues_[static_cast<std::size_t>(c)].size());
  const double slots = static_cast<double>(std::max<std::size_t>(1, total_slots()));
  const double est = service_ms_ewma_ * ahead / slots;
  const double lo = static_cast<double>(cfg_.retry_after_min.count());
  const double hi = static_cast<double>(cfg_.retry_after_max.count());
  return static_cast<std::uint32_t>(std::clamp(est, lo, hi));
}

admit_result scheduler_policy::admit(request_ticket t) {
  if (draining_) return {admit_code::draining, 0, "the node is draining and takes no new requests"};
  const bool known =
      std::any_of(workers_.begin(), workers_.end(),
                  [&](const auto& kv) { return serves(kv.second.state, t.model); }) ||
      cfg_.fallback_model.count(t.model) > 0;
  if (!known) return {admit_code::unknown_model, 0, "no worker serves model '" + t.model + "'"};
  auto& q = queues_[static_cast<std::size_t>(t.cls)];
  if (q.size() >= cfg_.queue_max[static_cast<std::size_t>(t.cls)]) {
    const auto after = retry_after_ms(t.cls);
    return {admit_code::overloaded, after,
            std::string{"the "} + to_string(t.cls) + " queue is full (" + std::to_string(q.size()) +
                " requests); retry after " + std::to_string(after) + " ms"};
  }
  enqueued(t);
  q.push_back(std::move(t));
  return {};
}

bool scheduler_policy::route::admits(const worker_state& w) const {
  return any && w.kind == kind && w.healthy && serves(w, *model);
}

scheduler_policy::route scheduler_policy::tier_for(const request_ticket& t,
                                                   const std::string& model) const {
  auto has = [&](worker_kind kind) {
    const route r{true, kind, &model, false};
    return std::any_of(workers_.begin(), workers_.end(),
                       [&](const auto& kv) { return r.admits(kv.second.state); });
  };
  if (t.edge && has(worker_kind::edge)) return {true, worker_kind::edge, &model, false};
  // GPU workers whenever a healthy one has the model (wait for a slot there rather than run
  // on a CPU); CPU workers of the same model only when no GPU worker is healthy.
  if (has(worker_kind::gpu)) return {true, worker_kind::gpu, &model, false};
  if (has(worker_kind::cpu)) return {true, worker_kind::cpu, &model, false};
  return {};
}

scheduler_policy::route scheduler_policy::route_for(const request_ticket& t) const {
  if (auto r = tier_for(t, t.model); r.any) return r;
  // The configured fallback model only when no healthy worker serves the requested one.
  if (auto fb = cfg_.fallback_model.find(t.model); fb != cfg_.fallback_model.end())
    if (auto r = tier_for(t, fb->second); r.any) {
      r.fallback = true;
      return r;
    }
  return {};
}

scheduler_policy::worker_record* scheduler_policy::place(const route& r) {
  if (!r.any) return nullptr;
  worker_record* best = nullptr;
  double best_load = 2.0;
  for (auto& [id, w] : workers_) {
    if (!r.admits(w.state) || w.running >= w.state.slots) continue;
    const double load = static_cast<double>(w.running) / static_cast<double>(w.state.slots);
    if (load < best_load) {
      best_load = load;
      best = &w;
    }
  }
  return best;
}

std::optional<std::uint64_t> scheduler_policy::victim_for(const request_ticket& t,
                                                          const route& r) const {
  if (!r.any) return std::nullopt;
  std::optional<std::uint64_t> victim;
  priority_class worst = t.cls;
  std::uint64_t newest = 0;
  for (const auto& [id, run] : running_) {
    if (run.ticket.cls <= t.cls) continue;  // only strictly lower classes are preempted
    if (!r.admits(run.worker->state)) continue;
    if (!victim || run.ticket.cls > worst || (run.ticket.cls == worst && run.start_seq > newest)) {
      victim = id;
      worst = run.ticket.cls;
      newest = run.start_seq;
    }
  }
  return victim;
}

dispatch scheduler_policy::start(worker_record& w, const route& r, request_ticket&& t) {
  // The dispatch first: the route may point at the ticket's model, which moves below.
  dispatch d{t.id, w.state.id, *r.model, r.fallback};
  ++w.running;
  ++running_by_class_[static_cast<std::size_t>(t.cls)];
  const auto id = t.id;
  running_.insert_or_assign(id, running_entry{&w, std::move(t), ++next_start_seq_});
  return d;
}

decisions scheduler_policy::schedule(local_time now) {
  decisions out;
  const std::size_t total = total_slots();
  out.starts.reserve(std::min(queued_total(), total));  // a hint: one pass fills at most every slot
  for (std::size_t ci = 0; ci < class_count; ++ci) {
    auto& q = queues_[ci];
    const auto cls = static_cast<priority_class>(ci);
    if (q.empty()) continue;
    // What this class may occupy. Starting its own requests does not change it (it depends on
    // the other classes' counts, and production's only on its own limit), nor do production's
    // preemptions of lower classes: computed once per class and pass.
    std::size_t allowed = 0;
    if (cls == priority_class::production) {
      // Lower classes' slots are production's to take back (preemption below), so only
      // production's own limit applies: it is allowed as if no other class ran (a class's
      // allowance never depends on its own running count).
      static constexpr std::array<std::size_t, class_count> none_running{};
      allowed = cfg_.capacity.allowed_slots(now, cls, total, none_running);
    } else {
      allowed = cfg_.capacity.allowed_slots(now, cls, total, running_by_class_);
    }
    // Scan the whole class queue in order: a request whose model's workers are full must not
    // block one for another model behind it.
    for (auto it = q.begin(); it != q.end();) {
      if (running_by_class_[ci] >= allowed) break;
      const auto r = route_for(*it);
      auto* w = place(r);
      if (!w && cls == priority_class::production) {
        // Production waits only for production: take the slot of the lowest class running.
        if (auto victim = victim_for(*it, r)) {
          auto node = running_.extract(*victim);
          auto& entry = node.mapped();
          out.preempts.push_back({*victim, entry.worker->state.id});
          --entry.worker->running;
          --running_by_class_[static_cast<std::size_t>(entry.ticket.cls)];
          enqueued(entry.ticket);
          // A lower class's queue: `it` (production's) stays valid.
          queues_[static_cast<std::size_t>(entry.ticket.cls)].push_front(std::move(entry.ticket));
          w = place(r);
          assert(w && "a preempted slot must be usable by the production request");
        }
      }
      if (!w) {
        ++it;
        continue;
      }
      out.starts.push_back(start(*w, r, std::move(*it)));
      it = q.erase(it);
    }
  }
  return out;
}

void scheduler_policy::finished(std::uint64_t request, std::chrono::nanoseconds service_time) {
  auto it = running_.find(request);
  if (it == running_.end()) return;  // already preempted, cancelled or its worker removed
  --it->second.worker->running;
  --running_by_class_[static_cast<std::size_t>(it->second.ticket.cls)];
  running_.erase(it);
  const double ms = std::chrono::duration<double, std::milli>(service_time).count();
  if (ms > 0) service_ms_ewma_ = 0.8 * service_ms_ewma_ + 0.2 * ms;
}

scheduler_policy::cancel_outcome scheduler_policy::cancel(std::uint64_t request,
                                                          std::string* worker) {
  for (auto& q : queues_) {
    auto it =
        std::find_if(q.begin(), q.end(), [&](const request_ticket& t) { return t.id == request; });
    if (it != q.end()) {
      q.erase(it);
      return cancel_outcome::dequeued;
    }
  }
  if (auto it = running_.find(request); it != running_.end()) {
    if (worker) *worker = it->second.worker->state.id;
    return cancel_outcome::running;
  }
  return cancel_outcome::not_found;
}

std::vector<std::uint64_t> scheduler_policy::expire(std::chrono::nanoseconds now) {
  std::vector<std::uint64_t> expired;
  if (now < next_expiry_) return expired;
  next_expiry_ = std::chrono::nanoseconds::max();
  for (auto& q : queues_) {
    for (auto it = q.begin(); it != q.end();) {
      if (it->deadline.count() > 0 && it->deadline <= now) {
        expired.push_back(it->id);
        it = q.erase(it);
      } else {
        enqueued(*it);  // still queued: its deadline bounds the next walk
        ++it;
      }
    }
  }
  return expired;
}

}  // namespace bastion::scheduling
