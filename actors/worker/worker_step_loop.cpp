#include "actors/worker/worker_step_loop.hpp"

#include "actors/worker/worker_input.hpp"
#include "kernels/bundle/model_bundle.hpp"
#include "kernels/engine/batch_runner.hpp"
#include "kernels/engine/tp_decoder.hpp"

#include <algorithm>
#include <cassert>

namespace bastion::worker {

using serving::request_outcome;
using serving::served_request_ptr;
using serving::stop_reason;

struct worker_step_loop::loaded_model {
  std::string id;
  std::int64_t context_tokens_max = 0;  // min(model, config)
  kernels::model_bundle bundle;
  kernels::kv_cache_config kv_config;  // one device's; a rank's differs in kv_dim
  std::unique_ptr<kernels::kv_cache> kv;
  std::unique_ptr<kernels::decoder> dec;    // one device
  std::unique_ptr<kernels::tp_decoder> tp;  // several: the model split across them
  kernels::step_engine* engine = nullptr;   // the one of the two in use
  std::unique_ptr<kernels::batch_runner> runner;
  std::int64_t retired_steps = 0;  // steps of runners a rebuilt group replaced
  kernels::runner_stats counted;   // the runner's stats as last added to the metrics
  kernels::detokenize_fn detokenize;
  std::vector<kernels::runner_event> events;  // scratch, reused across steps
  std::string step_call;  // its steps, as the stall watch names them
};

struct worker_step_loop::live_request {
  served_request_ptr request;
  loaded_model* model = nullptr;
  std::chrono::nanoseconds started{0};
};

namespace {

gateway::finish_reason to_gateway(kernels::finish_reason r) {
  switch (r) {
    case kernels::finish_reason::end_of_generation:
    case kernels::finish_reason::stop_string:
      return gateway::finish_reason::stop;
    case kernels::finish_reason::max_tokens:
    case kernels::finish_reason::context_full:
    case kernels::finish_reason::error:
      break;
  }
  return gateway::finish_reason::length;
}

}  // namespace

std::unique_ptr<worker_step_loop> worker_step_loop::create(
    step_loop_settings settings, const std::vector<worker_model_spec>& models,
    worker_backend backend, const clock_source& clock, worker_reports reports,
    serving::worker_metrics* metrics, std::string& error) {
  std::unique_ptr<worker_step_loop> loop(new worker_step_loop(
      std::move(settings), std::move(backend), clock, std::move(reports), metrics));
  const auto& s = loop->settings_;
  for (const auto& spec : models) {
    auto m = std::make_unique<loaded_model>();
    m->id = spec.id;
    m->step_call = "a step of model '" + spec.id + "'";
    auto refuse = [&](const std::string& why) {
      error = "worker '" + s.worker_id + "': model '" + spec.id + "' (" + spec.path + "): " + why;
      return nullptr;
    };
    if (auto st = kernels::load_model_bundle(spec.path, m->bundle); !st)
      return refuse(st.message());
    if (!m->bundle.tok) return refuse("the model has no tokenizer");
    const auto& c = m->bundle.weights.config;
    m->detokenize = kernels::make_detokenizer(m->bundle);
    m->context_tokens_max = std::min<std::int64_t>(c.context, spec.context_tokens_max);
    m->kv_config = {c.n_layers, c.kv_dim(), s.kv_block_tokens, s.kv_blocks, s.batch_max * 2 + 8};
    if (loop->backend_ && !loop->other_ranks_.empty() &&
        loop->collectives_.size() != loop->other_ranks_.size() + 1)
      return refuse(std::to_string(loop->other_ranks_.size() + 1) + " ranks but " +
                    std::to_string(loop->collectives_.size()) + " collective handles");
    if (auto st = loop->make_engine(*m); !st) return refuse(st.message());
    loop->model_ids_.push_back(spec.id);
    loop->models_.push_back(std::move(m));
  }
  loop->published_.id = s.worker_id;
  loop->published_.kind = s.kind;
  loop->published_.backend = loop->backend_name_;
  loop->published_.threads = s.threads;
  loop->published_.models = loop->model_ids_;
  loop->set_healthy(loop->backend_ != nullptr);
  loop->publish();
  loop->thread_ = std::thread([raw = loop.get()] { raw->run(); });
  if (s.step_stall_limit.count() > 0)
    loop->watch_thread_ = std::thread([raw = loop.get()] { raw->watch(); });
  return loop;
}

kernels::status worker_step_loop::make_engine(loaded_model& m) {
  const auto& s = settings_;
  if (!backend_) return kernels::status::ok();  // no backend: requests fail with its error
  if (!other_ranks_.empty()) {
    // Tensor parallelism: the model split across the ranks, each with its KV cache.
    std::vector<kernels::tp_decoder::rank_parts> parts;
    parts.push_back({backend_.get(), collectives_.at(0).get()});
    for (std::size_t r = 0; r < other_ranks_.size(); ++r)
      parts.push_back({other_ranks_[r].get(), collectives_.at(r + 1).get()});
    if (auto st = kernels::tp_decoder::create(m.bundle.weights, parts, m.kv_config, m.tp); !st)
      return {st.code(), "split across " + backend_name_ + ": " + st.message()};
    m.engine = m.tp.get();
  } else {
    // In the backend's memory (a device backend's kernels read and write it there).
    if (auto st = kernels::kv_cache::create(m.kv_config, *backend_, m.kv); !st)
      return {st.code(), "the KV cache of " + std::to_string(s.kv_blocks) +
                             " blocks could not be made: " + st.message()};
    m.dec = std::make_unique<kernels::decoder>(m.bundle.weights, *backend_, *m.kv,
                                               s.step_tokens_max);
    m.engine = m.dec.get();
  }
  kernels::runner_options ro;
  ro.batch_sequences_max = s.batch_max;
  ro.step_tokens_max = s.step_tokens_max;
  ro.prefill_chunk_max = std::min<std::int64_t>(256, s.step_tokens_max);
  ro.waiting_max = static_cast<std::int64_t>(s.inbox_max);
  ro.end_of_generation_ids = m.bundle.end_of_generation_ids;
  ro.detokenize = m.detokenize;
  m.runner = std::make_unique<kernels::batch_runner>(*m.engine, std::move(ro));
  return kernels::status::ok();
}

worker_step_loop::worker_step_loop(step_loop_settings settings, worker_backend backend,
                                   const clock_source& clock, worker_reports reports,
                                   serving::worker_metrics* metrics)
    : settings_(std::move(settings)),
      backend_(std::move(backend.backend)),
      other_ranks_(std::move(backend.other_ranks)),
      collectives_(std::move(backend.collectives)),
      make_collectives_(std::move(backend.make_collectives)),
      backend_name_(std::move(backend.name)),
      probe_call_("the probe of " + backend_name_),
      backend_error_(std::move(backend.error)),
      clock_(clock),
      reports_(std::move(reports)),
      metrics_(metrics),
      recovery_(settings_.recovery_backoff, settings_.recovery_backoff_max),
      stall_(settings_.step_stall_limit) {
  if (!backend_ && backend_error_.empty()) backend_error_ = "no backend";
}

worker_step_loop::~worker_step_loop() { stop(); }

bool worker_step_loop::submit(served_request_ptr request, std::string model) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ || inbox_.size() >= settings_.inbox_max) return false;
    if (stall_.stalled()) {
      // Sent before the scheduler heard that this worker is stalled: it never starts here.
      if (reports_.preempted) reports_.preempted(request->ticket);
      return true;
    }
    inbox_.push_back({std::move(request), std::move(model)});
  }
  wake_.notify_one();
  return true;
}

void worker_step_loop::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  watch_wake_.notify_one();
  if (watch_thread_.joinable()) watch_thread_.join();
  // A step thread stuck in a device call that never returns cannot be joined: the node then
  // does not finish stopping, and its supervisor's kill ends it (nothing else frees a hung
  // device either).
  if (thread_.joinable()) thread_.join();
}

void worker_step_loop::clock_moved() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    clock_moved_ = true;
  }
  wake_.notify_one();
  watch_wake_.notify_one();
}

serving::worker_snapshot worker_step_loop::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return published_;
}

void worker_step_loop::finished(const served_request_ptr& r, std::chrono::nanoseconds started) {
  assert(r->completed() && "a request is reported finished only once it is completed");
  const auto service =
      started.count() > 0 ? clock_.monotonic() - started : std::chrono::nanoseconds{0};
  finished_out_.push_back({r->ticket, static_cast<std::int64_t>(service.count())});
}

void worker_step_loop::flush_finished() {
  if (finished_out_.empty()) return;
  std::vector<serving::finished_report> batch;
  batch.swap(finished_out_);
  if (reports_.finished) reports_.finished(std::move(batch));
}

void worker_step_loop::end_stopped(const served_request_ptr& r, stop_reason why,
                                   const loaded_model* m) {
  const std::string model = m ? m->id : r->request().model;
  switch (why) {
    case stop_reason::deadline:
      r->finish(gateway::finish_reason::deadline, model, request_outcome::deadline);
      break;
    case stop_reason::draining:
      r->fail(gateway::error_code::cancelled,
              "worker '" + settings_.worker_id + "' is shutting down; the request was stopped",
              request_outcome::cancelled);
      break;
    case stop_reason::cancelled:
    case stop_reason::none:
      r->finish(gateway::finish_reason::cancelled, model, request_outcome::cancelled);
      break;
  }
}

void worker_step_loop::take(inbox_item item) {
  auto& r = item.request;
  const auto now = clock_.monotonic();
  if (r->completed()) return finished(r, {});
  auto why = r->stop_requested();
  if (why == stop_reason::none && r->deadline.count() > 0 && now >= r->deadline)
    why = stop_reason::deadline;
  if (why != stop_reason::none) {
    end_stopped(r, why, nullptr);
    return finished(r, {});
  }
  if (r->take_preempt()) {
    if (reports_.preempted) reports_.preempted(r->ticket);
    return;
  }
  auto fail = [&](gateway::error_code code, const std::string& msg, request_outcome o) {
    r->fail(code, msg, o);
    finished(r, {});
  };
  if (!backend_error_.empty())
    return fail(gateway::error_code::internal,
                "worker '" + settings_.worker_id + "' has no usable backend: " + backend_error_,
                request_outcome::failed);
  auto it = std::find_if(models_.begin(), models_.end(),
                         [&](const auto& m) { return m->id == item.model; });
  if (it == models_.end())
    return fail(gateway::error_code::internal,
                "worker '" + settings_.worker_id + "' does not serve model '" + item.model + "'",
                request_outcome::failed);
  loaded_model& m = **it;
  if (!m.runner) {
    // Its tensor-parallel group is down until a probe makes it again (the worker is
    // unhealthy): the scheduler runs the request elsewhere, as after a failing step.
    if (r->failovers < settings_.failovers_max) {
      ++r->failovers;
      if (reports_.preempted) reports_.preempted(r->ticket);
      return;
    }
    return fail(gateway::error_code::internal,
                "worker '" + settings_.worker_id + "' cannot run model '" + m.id +
                    "' until its tensor-parallel group over " + backend_name_ + " is made again",
                request_outcome::failed);
  }
  if (!r->prompt_ids.empty() && r->encoded_for != m.id) {
    // Resumed on another model (a fallback, with a tokenizer of its own): the ids so far are
    // the first model's. The input is encoded again, and the answer so far becomes this
    // model's tokens (its text is what the client has, or will have with carry_text).
    std::vector<std::int32_t> continued;
    if (!r->generated.empty()) {
      if (auto st = m.bundle.tok->encode(r->text + r->carry_text, false, false, continued); !st)
        return fail(gateway::error_code::internal,
                    "model '" + m.id + "' cannot continue the answer begun by '" + r->encoded_for +
                        "': " + st.message(),
                    request_outcome::failed);
    }
    r->prompt_ids.clear();
    r->generated = std::move(continued);
  }
  if (r->prompt_ids.empty()) {
    r->encoded_for = m.id;
    if (auto err =
            encode_input(m.bundle, r->request().input, m.context_tokens_max, r->prompt_ids)) {
      // The input as a whole is at fault (too long, untokenizable); the front ends name it.
      // A prompt too long for the context is counted as its own outcome.
      const bool too_long = err->what == input_refusal::kind::too_long;
      gateway::inference_error e{gateway::error_code::invalid_argument,
                                 std::move(err->message),
                                 r->request().request_id,
                                 0,
                                 {},
                                 "input"};
      if (too_long) e.reason = to_string(request_outcome::prompt_too_long);
      r->complete(std::move(e),
                  too_long ? request_outcome::prompt_too_long : request_outcome::invalid);
      return finished(r, {});
    }
  }
  const auto& p = r->request().params;
  const auto done = static_cast<std::int64_t>(r->generated.size());
  const std::int64_t remaining = static_cast<std::int64_t>(p.max_tokens) - done;
  if (remaining <= 0) {  // preempted right at its last token
    r->text += r->carry_text;
    r->carry_text.clear();
    r->finish(gateway::finish_reason::length, m.id, request_outcome::completed);
    return finished(r, {});
  }
  kernels::runner_request rr;
  rr.id = r->ticket;
  rr.prompt = r->prompt_ids;
  rr.prompt.insert(rr.prompt.end(), r->generated.begin(), r->generated.end());
  rr.sampling.temperature = p.temperature;
  rr.sampling.top_k = static_cast<std::int32_t>(std::min<std::uint32_t>(p.top_k, 1u << 30));
  rr.sampling.top_p = p.top_p;
  rr.sampling.repetition_penalty = p.repetition_penalty;
  rr.sampling.seed = p.seed + r->generated.size();  // a resumed request does not replay draws
  rr.max_tokens = remaining;
  rr.stop_strings = p.stop;
  if (static_cast<std::int64_t>(rr.prompt.size()) >= m.context_tokens_max) {
    r->text += r->carry_text;
    r->carry_text.clear();
    r->finish(gateway::finish_reason::length, m.id, request_outcome::completed);
    return finished(r, {});
  }
  if (auto st = m.runner->add(std::move(rr)); !st) {
    const bool full = st.code() == kernels::status_code::resource_exhausted &&
                      st.message().find("queue is full") != std::string::npos;
    return fail(full ? gateway::error_code::overloaded : gateway::error_code::invalid_argument,
                st.message(), full ? request_outcome::overloaded : request_outcome::invalid);
  }
  live_[r->ticket] = live_request{r, &m, now};
}

void worker_step_loop::poll_flags() {
  const auto now = clock_.monotonic();
  for (auto it = live_.begin(); it != live_.end();) {
    auto& lr = it->second;
    auto& r = lr.request;
    auto why = r->stop_requested();
    if (why == stop_reason::none && r->deadline.count() > 0 && now >= r->deadline)
      why = stop_reason::deadline;
    if (why != stop_reason::none) {
      lr.model->runner->cancel(r->ticket);  // frees its KV blocks now
      end_stopped(r, why, lr.model);
      finished(r, lr.started);
      it = live_.erase(it);
      continue;
    }
    if (r->take_preempt()) {
      // The runner returns this run's tokens; every one is already in r->generated (token
      // events append them as they come), so the request keeps its own copy.
      std::vector<std::int32_t> this_run;
      lr.model->runner->preempt(r->ticket, this_run);
      assert(this_run.size() <= r->generated.size());
      ++r->preemptions;
      hand_back(lr);
      it = live_.erase(it);
      continue;
    }
    ++it;
  }
}

void worker_step_loop::hand_back(live_request& lr) {
  auto& r = lr.request;
  // Text the runner held back (a partial character, a possible stop-string prefix) goes out
  // with the first token after the request resumes, so the stream stays seamless.
  const std::string all = lr.model->detokenize(r->generated);
  const std::size_t released = r->text.size();
  r->carry_text = all.size() > released ? all.substr(released) : std::string{};
  if (reports_.preempted) reports_.preempted(r->ticket);
}

void worker_step_loop::step_model(loaded_model& m) {
  auto& events = m.events;
  events.clear();
  std::int64_t sequences = 0;
  enter_device(m.step_call);
  const auto st = m.runner->step(events, &sequences);
  if (leave_device()) return drop_given_up();
  if (metrics_) count_picks(m);
  if (metrics_ && sequences > 0) {
    metrics_->steps->inc();
    metrics_->step_sequences->set(static_cast<double>(sequences));
    metrics_->step_sequences_max->set(static_cast<double>(m.runner->stats().max_step_sequences));
  }
  if (!st && healthy_) became_unhealthy(st.message());
  for (auto& e : events) {
    auto it = live_.find(e.id);
    if (it == live_.end()) continue;  // cancelled in this very step
    auto& r = it->second.request;
    if (e.what == kernels::runner_event::kind::token) {
      r->generated.push_back(e.token);
      if (metrics_) metrics_->tokens_generated->inc();
      std::string piece;
      if (!e.text.empty()) {
        piece = std::move(r->carry_text);
        r->carry_text.clear();
        piece += e.text;
        r->text += piece;
      }
      r->emit_token({std::move(piece), static_cast<std::uint32_t>(e.token)});
      continue;
    }
    // finished
    if (e.reason == kernels::finish_reason::error && !st &&
        r->failovers < settings_.failovers_max) {
      // The step failed, not the request: another worker continues it from its tokens (the
      // runner has already freed its KV blocks here).
      ++r->failovers;
      hand_back(it->second);
      live_.erase(it);
      continue;
    }
    if (e.reason == kernels::finish_reason::error) {
      r->fail(gateway::error_code::internal,
              "worker '" + settings_.worker_id + "' failed the request: " + e.error.message(),
              request_outcome::failed);
    } else {
      std::string tail = std::move(r->carry_text);
      r->carry_text.clear();
      tail += e.text;
      if (!tail.empty()) {
        r->text += tail;
        const auto last =
            r->generated.empty() ? 0u : static_cast<std::uint32_t>(r->generated.back());
        r->emit_token({tail, last});
      }
      r->finish(to_gateway(e.reason), m.id, request_outcome::completed);
    }
    finished(r, it->second.started);
    live_.erase(it);
  }
}

void worker_step_loop::count_picks(loaded_model& m) {
  const auto& now = m.runner->stats();
  auto add = [](metrics::counter* c, std::int64_t to, std::int64_t& from) {
    if (to > from) c->inc(static_cast<std::uint64_t>(to - from));
    from = to;
  };
  add(metrics_->candidate_draws, now.candidate_draws, m.counted.candidate_draws);
  add(metrics_->logit_rows_downloaded, now.rows_downloaded, m.counted.rows_downloaded);
  add(metrics_->penalised_rows, now.penalised_rows, m.counted.penalised_rows);
}

void worker_step_loop::set_healthy(bool healthy) {
  healthy_ = healthy;
  if (metrics_) metrics_->healthy->set(healthy ? 1.0 : 0.0);
}

void worker_step_loop::became_unhealthy(const std::string& why) {
  // Told before the requests are handed back, so the scheduler routes them elsewhere.
  set_healthy(false);
  recovery_.failed(clock_.monotonic());
  if (reports_.health) reports_.health(false, "worker '" + settings_.worker_id + "': " + why);
}

void worker_step_loop::enter_device(const std::string& what) {
  if (stall_.limit().count() <= 0) return;  // no watch thread (the limit never changes)
  std::lock_guard<std::mutex> lock(mutex_);
  stall_.enter(clock_.monotonic(), what);
}

bool worker_step_loop::leave_device() {
  if (stall_.limit().count() <= 0) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  return stall_.leave();
}

void worker_step_loop::drop_given_up() {
  // The watch thread handed these back (or failed them) and told the scheduler: not a word
  // more about them from here, and none of what the call produced reaches them.
  for (auto& [ticket, lr] : live_)
    if (lr.model->runner) lr.model->runner->cancel(ticket);
  live_.clear();
  set_healthy(false);  // the watch thread reported it; this is the step thread's own state
  recovery_.failed(clock_.monotonic());
}

void worker_step_loop::watch() {
  const auto limit = settings_.step_stall_limit;
  // Often enough that a call is given up on within a quarter of the limit past it (a clock
  // moved by hand wakes the thread at once, through clock_moved()).
  const auto period = std::clamp<std::chrono::milliseconds>(limit / 4, std::chrono::milliseconds{1},
                                                            std::chrono::milliseconds{1000});
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    if (auto what = stall_.overdue(clock_.monotonic())) give_up_call(*what);
    watch_wake_.wait_for(lock, period);
  }
}

void worker_step_loop::give_up_call(const std::string& what) {
  stall_.give_up();
  const std::string whose = "worker '" + settings_.worker_id + "' (" + backend_name_ + "): " + what;
  // Unhealthy first: the scheduler must not route the requests handed back here to this
  // worker again (reports to it arrive in the order they are made).
  if (metrics_) metrics_->healthy->set(0.0);
  published_.healthy = false;
  published_.running = 0;  // handed away below; the call may never return to publish again
  published_.waiting = 0;
  if (metrics_) metrics_->step_stalls->inc();
  if (reports_.health)
    reports_.health(false, whose + "; gave up on it and handed its " +
                               std::to_string(live_.size()) +
                               " requests to other workers (a hung device is freed only by "
                               "restarting the node)");
  std::vector<serving::finished_report> failed;
  for (auto& [ticket, lr] : live_) {
    auto& r = lr.request;
    if (r->failovers < settings_.failovers_max) {
      ++r->failovers;
      hand_back(lr);
      continue;
    }
    r->fail(gateway::error_code::internal, whose + "; the request was given up with it",
            request_outcome::failed);
    const auto service = clock_.monotonic() - lr.started;
    failed.push_back({ticket, static_cast<std::int64_t>(service.count())});
  }
  // Requests that ended before the call began in this turn of the loop: their reports wait
  // for its end, which may never come.
  for (auto& f : finished_out_) failed.push_back(f);
  finished_out_.clear();
  if (!failed.empty() && reports_.finished) reports_.finished(std::move(failed));
  // Not started yet: they go to other workers as they are (they never failed).
  for (auto& item : inbox_)
    if (reports_.preempted) reports_.preempted(item.request->ticket);
  inbox_.clear();
}

void worker_step_loop::probe_if_due() {
  if (healthy_ || !backend_ || !recovery_.probe_due(clock_.monotonic())) return;
  enter_device(probe_call_);
  auto st = probe_backend(*backend_);
  for (std::size_t r = 0; st && r < other_ranks_.size(); ++r) st = probe_backend(*other_ranks_[r]);
  if (leave_device()) {
    if (metrics_) metrics_->recovery_probes->inc();
    return drop_given_up();
  }
  // Every device works again, but a tensor-parallel group whose collective was aborted cannot
  // step: it is made again, or the worker stays unhealthy (its models fall back elsewhere).
  const bool rebuild = st && group_needs_rebuild();
  if (rebuild) st = rebuild_group();
  if (metrics_) metrics_->recovery_probes->inc();
  if (!st) {
    recovery_.failed(clock_.monotonic());
    return;
  }
  const auto failed_probes = recovery_.failed_probes();
  recovery_.recovered();
  set_healthy(true);
  if (metrics_) metrics_->recoveries->inc();
  if (reports_.health)
    reports_.health(true, "worker '" + settings_.worker_id +
                              "': the backend passed its probe after " +
                              std::to_string(failed_probes) + " failed ones" +
                              (rebuild ? "; its tensor-parallel group over " + backend_name_ +
                                             " was made again"
                                       : std::string{}));
}

bool worker_step_loop::group_needs_rebuild() const {
  if (other_ranks_.empty()) return false;
  for (const auto& m : models_)
    if (!m->tp || !m->tp->broken().empty()) return true;
  return false;
}

kernels::status worker_step_loop::rebuild_group() {
  std::string why = "the tensor-parallel group over " + backend_name_ + " was aborted";
  for (const auto& m : models_)
    if (m->tp && !m->tp->broken().empty()) {
      why = m->tp->broken();
      break;
    }
  if (!make_collectives_)
    return {kernels::status_code::device_error,
            why + "; this worker cannot make its group again: restart the node"};
  // The collective handles are the group's, shared by every model: all the models' engines go
  // and are made again. Requests still in their runners go back to the scheduler first (they
  // did not fail; the group did).
  for (auto& [ticket, lr] : live_) {
    lr.model->runner->cancel(ticket);
    hand_back(lr);
  }
  live_.clear();
  enter_device("making the tensor-parallel group over " + backend_name_ + " again");
  auto st = remake_group();
  if (leave_device()) {  // live_ is empty: nothing to drop but the call
    return {kernels::status_code::device_error,
            "making the group over " + backend_name_ + " again did not return in time"};
  }
  return st;
}

kernels::status worker_step_loop::remake_group() {
  for (auto& m : models_) {
    if (m->runner) m->retired_steps += m->runner->stats().steps;
    m->runner.reset();
    m->counted = {};  // the new runner counts from 0
    m->tp.reset();  // its KV caches and rank threads, before the new group takes device memory
    m->engine = nullptr;
  }
  collectives_.clear();
  std::vector<kernels::backend*> ranks{backend_.get()};
  for (auto& r : other_ranks_) ranks.push_back(r.get());
  std::vector<std::unique_ptr<kernels::collective>> made;
  if (auto st = make_collectives_(ranks, made); !st)
    return {st.code(), "making the group over " + backend_name_ + " again: " + st.message()};
  if (made.size() != ranks.size())
    return {kernels::status_code::device_error,
            "making the group over " + backend_name_ + " again gave " +
                std::to_string(made.size()) + " handles for " + std::to_string(ranks.size()) +
                " ranks"};
  collectives_ = std::move(made);
  for (auto& m : models_)
    if (auto st = make_engine(*m); !st)
      return {st.code(), "model '" + m->id + "': " + st.message()};
  if (metrics_) metrics_->group_rebuilds->inc();
  return kernels::status::ok();
}

std::chrono::nanoseconds worker_step_loop::idle_wait() const {
  if (healthy_ || !backend_ || !recovery_.waiting()) return std::chrono::nanoseconds::max();
  return std::max(recovery_.next_probe() - clock_.monotonic(), std::chrono::nanoseconds{0});
}

void worker_step_loop::publish() {
  serving::worker_snapshot s;
  s.id = settings_.worker_id;
  s.kind = settings_.kind;
  s.backend = backend_name_;
  s.threads = settings_.threads;
  s.models = model_ids_;
  s.healthy = healthy_;
  for (const auto& m : models_) {
    s.steps += m->retired_steps;
    if (m->runner) {
      s.running += static_cast<std::int64_t>(m->runner->active());
      s.waiting += static_cast<std::int64_t>(m->runner->waiting());
      s.steps += m->runner->stats().steps;
      s.max_step_sequences = std::max(s.max_step_sequences, m->runner->stats().max_step_sequences);
    }
    if (m->engine) {  // a tensor-parallel engine's ranks hold the same blocks each
      s.kv_blocks_used += m->engine->kv_blocks_total() - m->engine->kv_blocks_free();
      s.kv_blocks_total += m->engine->kv_blocks_total();
    } else if (m->kv) {
      s.kv_blocks_used += m->kv->blocks_used();
      s.kv_blocks_total += m->kv->blocks_total();
    }
  }
  if (metrics_) {
    metrics_->kv_blocks_used->set(static_cast<double>(s.kv_blocks_used));
    metrics_->kv_blocks_total->set(static_cast<double>(s.kv_blocks_total));
  }
  std::lock_guard<std::mutex> lock(mutex_);
  s.waiting += static_cast<std::int64_t>(inbox_.size());
  published_ = std::move(s);
}

void worker_step_loop::run() {
  std::deque<inbox_item> taken;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // Sleep only with nothing to run: live requests are polled after every step. An
      // unhealthy worker sleeps until its next probe is due, and no more often: a moved
      // clock (clock_moved()) wakes it to look again.
      auto ready = [&] { return stopping_ || clock_moved_ || !inbox_.empty() || !live_.empty(); };
      const auto wait = idle_wait();
      if (wait == std::chrono::nanoseconds::max())
        wake_.wait(lock, ready);
      else
        wake_.wait_for(lock, wait, ready);
      clock_moved_ = false;
      if (stopping_) break;
      taken.swap(inbox_);
    }
    probe_if_due();
    for (auto& item : taken) take(std::move(item));
    taken.clear();
    poll_flags();
    for (auto& m : models_)
      if (m->runner && !m->runner->idle()) step_model(*m);
    flush_finished();
    publish();
  }
  // Shutdown: what is left is told so, and reported, so the scheduler frees its slots.
  {
    std::lock_guard<std::mutex> lock(mutex_);
    taken.swap(inbox_);
  }
  for (auto& item : taken) {
    end_stopped(item.request, stop_reason::draining, nullptr);
    finished(item.request, {});
  }
  for (auto& [ticket, lr] : live_) {
    lr.model->runner->cancel(ticket);
    end_stopped(lr.request, stop_reason::draining, lr.model);
    finished(lr.request, lr.started);
  }
  live_.clear();
  flush_finished();
  publish();
}

}  // namespace bastion::worker
