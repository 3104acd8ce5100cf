#pragma once
// A scripted inference_port for gateway tests (never part of the product). Each request runs on
// its own thread, so callbacks arrive from foreign threads exactly as from CAF workers. By
// default it echoes the prompt's words as tokens; a script can change tokens, delays, the
// outcome, or make the port answer inline (inside submit) or never.

#include "actors/gateway/inference_port.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace bastion::gateway::testing {

struct fake_script {
  std::vector<std::string> tokens;
  std::chrono::milliseconds first_delay{0};
  std::chrono::milliseconds token_delay{0};
  std::optional<inference_error> error;  // the outcome instead of a result
  finish_reason reason = finish_reason::stop;
  std::string served_model;    // empty: the requested model
  bool inline_answer = false;  // answer synchronously inside submit()
  bool never_finish = false;   // emit tokens, then wait until cancelled
};

class fake_port final : public inference_port {
 public:
  fake_port() {
    models_ = {{"echo", 4096, "bastion", 1700000000}, {"tiny", 8, "bastion", 1700000000}};
  }
  ~fake_port() override {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      threads.swap(threads_);
    }
    cv_.notify_all();
    for (auto& t : threads) t.join();
  }

  void set_script(std::function<fake_script(const inference_request&)> s) {
    std::lock_guard<std::mutex> lock(mutex_);
    script_ = std::move(s);
  }

  void submit(inference_request request, token_callback on_token,
              completion_callback on_done) override {
    fake_script script;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      submitted_.push_back(request);
      script = script_ ? script_(request) : echo(request);
    }
    if (script.inline_answer) {
      run(request, script, on_token, on_done);
      return;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    threads_.emplace_back(
        [this, request, script, on_token, on_done]() { run(request, script, on_token, on_done); });
  }

  void cancel(const std::string& request_id) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      cancelled_.insert(request_id);
    }
    cv_.notify_all();
  }

  std::vector<model_info> list_models() override { return models_; }

  std::vector<inference_request> submitted() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return submitted_;
  }
  bool was_cancelled(const std::string& id) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return cancelled_.count(id) != 0;
  }
  /// Waits up to `timeout` for cancel(id).
  bool wait_cancelled(const std::string& id, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return cancelled_.count(id) != 0; });
  }
  std::size_t finished_count() const { return finished_.load(); }

  static fake_script echo(const inference_request& r) {
    fake_script s;
    std::string text;
    if (auto* p = std::get_if<std::string>(&r.input)) text = *p;
    if (auto* m = std::get_if<std::vector<chat_message>>(&r.input)) {
      for (auto& msg : *m) text += (text.empty() ? "" : " ") + msg.content;
    }
    if (auto* t = std::get_if<std::vector<std::uint32_t>>(&r.input)) {
      for (auto id : *t) text += (text.empty() ? "" : " ") + std::to_string(id);
    }
    std::istringstream words(text);
    std::string w;
    while (words >> w && s.tokens.size() < r.params.max_tokens)
      s.tokens.push_back(s.tokens.empty() ? w : " " + w);
    s.reason = s.tokens.size() >= r.params.max_tokens ? finish_reason::length : finish_reason::stop;
    return s;
  }

 private:
  bool sleep_or_cancel(const std::string& id, std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait_for(lock, d, [&] { return stopping_ || cancelled_.count(id) != 0; });
    return stopping_ || cancelled_.count(id) != 0;
  }

  void run(const inference_request& r, const fake_script& s, const token_callback& on_token,
           const completion_callback& on_done) {
    bool cancelled = s.first_delay.count() > 0 && sleep_or_cancel(r.request_id, s.first_delay);
    std::string text;
    std::uint32_t n = 0;
    for (const auto& t : s.tokens) {
      if (cancelled) break;
      if (n > 0 && s.token_delay.count() > 0 && sleep_or_cancel(r.request_id, s.token_delay)) {
        cancelled = true;
        break;
      }
      text += t;
      on_token(token_event{t, 1000 + n});
      ++n;
    }
    if (!cancelled && s.never_finish) {
      while (!sleep_or_cancel(r.request_id, std::chrono::milliseconds(50))) {
      }
      cancelled = true;
    }
    ++finished_;
    if (s.error && !cancelled) {
      auto e = *s.error;
      e.request_id = r.request_id;
      on_done(e);
      return;
    }
    final_result result;
    result.text = text;
    result.reason = cancelled ? finish_reason::cancelled : s.reason;
    result.usage = {7, n};
    result.served_model = s.served_model.empty() ? r.model : s.served_model;
    result.site = "prod";
    result.epoch = 3;
    on_done(result);
  }

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<model_info> models_;
  std::function<fake_script(const inference_request&)> script_;
  std::vector<inference_request> submitted_;
  std::set<std::string> cancelled_;
  std::vector<std::thread> threads_;
  std::atomic<std::size_t> finished_{0};
  bool stopping_ = false;
};

}  // namespace bastion::gateway::testing
