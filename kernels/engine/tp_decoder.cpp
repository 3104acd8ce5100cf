#include "kernels/engine/tp_decoder.hpp"

#include "kernels/engine/tensor_parallel.hpp"

namespace bastion::kernels {
namespace {

// Failures every rank meets alike, before any device work (a bad batch, no KV room): no rank
// is left waiting in an all-reduce, so the others are waited for, not aborted.
bool same_on_every_rank(const status& s) {
  return s.code() == status_code::invalid_argument || s.code() == status_code::resource_exhausted;
}

}  // namespace

status tp_decoder::create(const model& m, const std::vector<rank_parts>& ranks, kv_cache_config kv,
                          std::unique_ptr<tp_decoder>& out, tp_watch watch) {
  const auto count = static_cast<int>(ranks.size());
  if (count < 1) return {status_code::invalid_argument, "tp_decoder: no ranks"};
  std::unique_ptr<tp_decoder> engine{new tp_decoder(m, watch)};
  for (int r = 0; r < count; ++r) {
    const auto& parts = ranks[static_cast<std::size_t>(r)];
    const std::string who =
        "tp_decoder: rank " + std::to_string(r) + " of " + std::to_string(count);
    if (!parts.be) return {status_code::invalid_argument, who + " has no backend"};
    if (count > 1 && (!parts.comm || parts.comm->ranks() != count || parts.comm->rank() != r))
      return {status_code::invalid_argument,
              who + ": its collective handle is missing or is not rank " + std::to_string(r) +
                  " of " + std::to_string(count)};
    auto state = std::make_unique<rank_state>();
    state->be = parts.be;
    state->comm = parts.comm;
    if (auto s = shard_model(m, r, count, state->shard); !s) return s;
    kv_cache_config cfg = kv;
    cfg.kv_dim = state->shard.config.kv_dim();
    cfg.n_layers = state->shard.config.n_layers;
    const status made = kv_cache::create(cfg, *parts.be, state->kv);
    if (!made) return {made.code(), who + ": KV cache: " + made.message()};
    state->dec = std::make_unique<decoder>(state->shard, *parts.be, *state->kv);
    if (count > 1) state->dec->use_collective(parts.comm);
    if (auto s = state->dec->prepare(); !s) return {s.code(), who + ": weights: " + s.message()};
    engine->ranks_.push_back(std::move(state));
  }
  for (std::size_t r = 0; r < engine->ranks_.size(); ++r)
    engine->ranks_[r]->thread = std::thread([e = engine.get(), r] { e->run_rank(r); });
  out = std::move(engine);
  return status::ok();
}

tp_decoder::~tp_decoder() {
  {
    std::lock_guard<std::mutex> lock{mutex_};
    stopping_ = true;
  }
  job_posted_.notify_all();
  for (auto& r : ranks_)
    if (r->thread.joinable()) r->thread.join();
}

void tp_decoder::run_rank(std::size_t r) {
  rank_state& me = *ranks_[r];
  std::uint64_t seen = 0;
  for (;;) {
    std::unique_lock<std::mutex> lock{mutex_};
    job_posted_.wait(lock, [&] { return stopping_ || job_ != seen; });
    if (stopping_) return;
    seen = job_;
    const auto& batch = *batch_;
    step_output& out = r == 0 ? *rank0_out_ : me.out;
    // Only rank 0's results leave the engine: the others bring back as little as they can.
    const step_results want = r == 0 ? want_ : step_results::greedy_tokens;
    lock.unlock();
    status result = me.dec->step(batch, out, want);
    lock.lock();
    me.result = std::move(result);
    me.running = false;
    ++done_;
    rank_done_.notify_all();
  }
}

std::string tp_decoder::watch(std::chrono::steady_clock::time_point started) const {
  for (std::size_t r = 0; r < ranks_.size(); ++r)
    if (ranks_[r]->comm)
      if (auto e = ranks_[r]->comm->async_error(); !e)
        return "rank " + std::to_string(r) + "'s collective: " + e.message();
  if (watch_.step_timeout.count() > 0 &&
      std::chrono::steady_clock::now() - started >= watch_.step_timeout) {
    std::string late;
    for (std::size_t r = 0; r < ranks_.size(); ++r)
      if (ranks_[r]->running) late += (late.empty() ? "" : ", ") + std::to_string(r);
    return "rank(s) " + late + " did not finish the step within " +
           std::to_string(watch_.step_timeout.count()) + " ms";
  }
  return {};
}

void tp_decoder::abort_collectives() noexcept {
  for (auto& r : ranks_)
    if (r->comm) r->comm->abort();
}

status tp_decoder::step(const std::vector<step_entry>& batch, step_output& out, step_results want) {
  if (!broken_.empty()) return {status_code::device_error, broken_};
  const auto started = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock{mutex_};
  batch_ = &batch;
  rank0_out_ = &out;
  want_ = want;
  done_ = 0;
  for (auto& r : ranks_) {
    r->result = status::ok();
    r->running = true;
  }
  ++job_;
  job_posted_.notify_all();
  bool aborted = false;
  std::string watched;  // why the step was aborted from here, when no rank had failed
  std::size_t failed_rank = ranks_.size();
  auto finished = [&] {
    // A rank failed on its device while others may wait for it in an all-reduce: release
    // them (abort) instead of waiting forever. Checked at every rank's finish.
    for (std::size_t r = 0; r < ranks_.size() && failed_rank == ranks_.size(); ++r)
      if (!ranks_[r]->result) failed_rank = r;
    if (!aborted && failed_rank < ranks_.size() && done_ < ranks_.size() &&
        !same_on_every_rank(ranks_[failed_rank]->result)) {
      aborted = true;
      abort_collectives();
    }
    return done_ == ranks_.size();
  };
  // Ranks stuck where no failure of their own ends them are released by the watch.
  while (!rank_done_.wait_for(lock, watch_.interval, finished)) {
    if (aborted) continue;
    watched = watch(started);
    if (watched.empty()) continue;
    aborted = true;
    abort_collectives();
  }
  batch_ = nullptr;
  if (!watched.empty()) {
    broken_ = "tp_decoder: " + watched + " (the collective was aborted: this engine must be rebuilt)";
    return {status_code::device_error, broken_};
  }
  if (failed_rank == ranks_.size()) return status::ok();
  const status& first = ranks_[failed_rank]->result;
  const std::string why =
      "tp_decoder: rank " + std::to_string(failed_rank) + ": " + first.message();
  if (aborted) {
    broken_ = why + " (the collective was aborted: this engine must be rebuilt)";
    return {status_code::device_error, broken_};
  }
  // Ranks that stepped grow their sequences back to where the failed ones are (lockstep).
  for (auto& r : ranks_) {
    if (!r->result) continue;
    for (const auto& e : batch)
      (void)r->kv->shrink(e.seq, static_cast<std::int64_t>(e.tokens.size()));
  }
  return {first.code(), why};
}

status tp_decoder::add_sequence(sequence_id id) {
  for (std::size_t r = 0; r < ranks_.size(); ++r) {
    if (auto s = ranks_[r]->kv->add_sequence(id); !s) {
      for (std::size_t undo = 0; undo < r; ++undo) ranks_[undo]->kv->release(id);
      return s;
    }
  }
  return status::ok();
}

void tp_decoder::release_sequence(sequence_id id) {
  for (auto& r : ranks_) r->kv->release(id);
}

}  // namespace bastion::kernels
