#include "actors/serving/served_request.hpp"

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
  if (!request_.stream || !on_token_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (completed_.load(std::memory_order_relaxed)) return;
  on_token_(std::move(event));
}

bool served_request::complete(gateway::completion outcome, request_outcome counted_as) {
  gateway::completion_callback done;
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
  if (metrics_) metrics_->count(request_.priority, counted_as);
  return true;
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
