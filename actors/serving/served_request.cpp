#include "actors/serving/served_request.hpp"

#include <algorithm>
#include <optional>

namespace bastion::serving {

served_request::served_request(gateway::inference_request request, gateway::token_callback on_token,
                               gateway::completion_callback on_done, std::string site,
                               serving_metrics* metrics)
    : request_(std::move(request)),
      on_token_(std::move(on_token)),
      on_done_(std::move(on_done)),
      site_(std::move(site)),
      metrics_(metrics) {}

served_request::~served_request() {
  if (completed_.load(std::memory_order_acquire) || !on_done_) return;
  gateway::inference_error e;
  e.code = gateway::error_code::cancelled;
  e.message = "the serving machinery stopped before the request ended";
  e.request_id = request_.request_id;
  on_done_(std::move(e));
}

void served_request::emit_token(gateway::token_event event) {
  if (first_token_ns_.load(std::memory_order_relaxed) == 0) {
    const auto since = std::chrono::steady_clock::now() - admitted_;
    const std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(since).count();
    first_token_ns_.store(std::max<std::int64_t>(1, ns), std::memory_order_relaxed);
  }
  if (!request_.stream || !on_token_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (completed_.load(std::memory_order_relaxed)) return;
  on_token_(std::move(event));
}

bool served_request::complete(gateway::completion outcome, request_outcome counted_as) {
  gateway::completion_callback done;
  std::uint32_t outcome_tokens = 0;  // an answer's completion tokens, for the latencies
  if (const auto* r = std::get_if<gateway::final_result>(&outcome))
    outcome_tokens = r->usage.completion_tokens;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (completed_.load(std::memory_order_relaxed)) return false;
    completed_.store(true, std::memory_order_release);
    done = std::move(on_done_);
    on_token_ = nullptr;  // the client's callbacks are released with the completion
    // Delivered under the lock: a token racing with this completion on another thread either
    // went out before it or is dropped, never after it.
    if (auto* err = std::get_if<gateway::inference_error>(&outcome); err && err->request_id.empty())
      err->request_id = request_.request_id;
    if (done) done(std::move(outcome));
  }
  if (metrics_) {
    metrics_->count(request_.priority, counted_as);
    if (counted_as == request_outcome::completed) observe_latencies(outcome_tokens);
  }
  return true;
}

void served_request::observe_latencies(std::uint32_t tokens) {
  using seconds = std::chrono::duration<double>;
  const double e2e = seconds(std::chrono::steady_clock::now() - admitted_).count();
  const auto first_ns = first_token_ns_.load(std::memory_order_relaxed);
  std::optional<double> ttft, tpot;
  if (first_ns > 0) {
    ttft = seconds(std::chrono::nanoseconds{first_ns}).count();
    if (tokens > 1) tpot = std::max(0.0, e2e - *ttft) / static_cast<double>(tokens - 1);
  }
  metrics_->observe_answer(request_.priority, ttft, tpot, e2e);
}

bool served_request::finish(gateway::finish_reason why, const std::string& model,
                            request_outcome counted_as) {
  gateway::final_result out;
  out.text = text;
  out.reason = why;
  out.usage.prompt_tokens = static_cast<std::uint32_t>(prompt_ids.size());
  out.usage.completion_tokens = static_cast<std::uint32_t>(generated.size());
  out.served_model = model;
  out.site = site_;
  return complete(std::move(out), counted_as);
}

bool served_request::fail(gateway::error_code code, std::string message, request_outcome counted_as,
                          std::uint32_t retry_after_ms) {
  gateway::inference_error e;
  e.code = code;
  e.message = std::move(message);
  e.request_id = request_.request_id;
  e.retry_after_ms = retry_after_ms;
  return complete(std::move(e), counted_as);
}

}  // namespace bastion::serving
