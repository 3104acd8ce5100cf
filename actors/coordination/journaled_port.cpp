#include "actors/coordination/journaled_port.hpp"

#include "actors/coordination/journal_records.hpp"

#include <caf/send.hpp>

namespace bastion::coordination {

journaled_port::journaled_port(gateway::inference_port& inner, const coordinator_view& view,
                               const clock_source& clock, std::string site, bool retain_text)
    : inner_(inner),
      view_(view),
      clock_(clock),
      site_(std::move(site)),
      retain_text_(retain_text) {}

void journaled_port::set_coordinator(caf::actor coordinator) {
  std::lock_guard<std::mutex> lock{mutex_};
  coordinator_ = std::move(coordinator);
}

void journaled_port::submit(gateway::inference_request request, gateway::token_callback on_token,
                            gateway::completion_callback on_done) {
  const std::string id = request.request_id;
  const auto wall_ns = static_cast<std::uint64_t>(clock_.wall().count());
  auto admission = encode_admission(request, wall_ns);
  caf::actor coordinator;
  {
    std::lock_guard<std::mutex> lock{mutex_};
    coordinator = coordinator_;
  }
  // Callbacks are never called with the lock held: they may re-enter the port.
  if (!coordinator) {
    on_done(gateway::inference_error{gateway::error_code::not_primary,
                                     "site '" + site_ + "' has no coordinator yet",
                                     id,
                                     0,
                                     {}});
    return;
  }
  {
    std::unique_lock<std::mutex> lock{mutex_};
    if (pending_.count(id) != 0) {
      lock.unlock();
      on_done(gateway::inference_error{gateway::error_code::invalid_argument,
                                       "request id '" + id + "' is already running here",
                                       id,
                                       0,
                                       {}});
      return;
    }
    pending_.emplace(id, pending_request{std::move(request), std::move(on_token),
                                         std::move(on_done), false, std::nullopt});
  }
  caf::anon_send(coordinator, begin_atom::value, id, std::move(admission));
}

void journaled_port::cancel(const std::string& request_id) {
  // The inner port ends the work and reports it (cancelled) through on_done, which journals
  // the completion if the admission had committed.
  inner_.cancel(request_id);
}

std::vector<gateway::model_info> journaled_port::list_models() { return inner_.list_models(); }

void journaled_port::start_inner(const std::string& request_id) {
  gateway::inference_request req;
  bool stream = false;
  caf::actor coordinator;
  {
    std::lock_guard<std::mutex> lock{mutex_};
    auto it = pending_.find(request_id);
    if (it == pending_.end() || it->second.started) return;
    it->second.started = true;
    req = it->second.request;
    stream = static_cast<bool>(it->second.on_token) && it->second.request.stream;
    coordinator = coordinator_;
  }
  req.stream = stream;
  gateway::token_callback on_token;
  if (stream)
    on_token = [coordinator, request_id](gateway::token_event ev) {
      caf::anon_send(coordinator, token_atom::value, request_id, std::move(ev.text), ev.token_id);
    };
  completion_options opt{retain_text_, site_, 0};
  inner_.submit(std::move(req), std::move(on_token),
                [this, coordinator, request_id, opt](gateway::completion c) mutable {
                  opt.epoch = view_.get().epoch;
                  if (auto* f = std::get_if<gateway::final_result>(&c)) {
                    f->site = site_;
                    f->epoch = opt.epoch;
                  }
                  const bool failed = std::holds_alternative<gateway::inference_error>(c);
                  const auto wall_ns = static_cast<std::uint64_t>(clock_.wall().count());
                  auto record = encode_completion(request_id, c, opt, wall_ns);
                  {
                    // Kept for the release: the record may hold only the output's digest.
                    std::lock_guard<std::mutex> lock{mutex_};
                    if (auto it = pending_.find(request_id); it != pending_.end())
                      it->second.outcome = std::move(c);
                  }
                  caf::anon_send(coordinator, done_atom::value, request_id, std::move(record),
                                 failed);
                });
}

void journaled_port::cancel_inner(const std::string& request_id) { inner_.cancel(request_id); }

void journaled_port::release_tokens(const std::string& request_id, std::vector<held_token> tokens) {
  gateway::token_callback cb;
  {
    std::lock_guard<std::mutex> lock{mutex_};
    auto it = pending_.find(request_id);
    if (it == pending_.end() || !it->second.on_token) return;
    cb = it->second.on_token;
  }
  for (auto& t : tokens) cb(gateway::token_event{std::move(t.text), t.id});
}

void journaled_port::release_done(const std::string& request_id, gateway::completion outcome) {
  gateway::completion_callback cb;
  {
    std::lock_guard<std::mutex> lock{mutex_};
    auto it = pending_.find(request_id);
    if (it == pending_.end()) return;
    cb = std::move(it->second.on_done);
    pending_.erase(it);
  }
  cb(std::move(outcome));
}

void journaled_port::release_committed(const std::string& request_id,
                                       const std::vector<std::uint8_t>& completion_record) {
  gateway::completion_callback cb;
  std::optional<gateway::completion> outcome;
  {
    std::lock_guard<std::mutex> lock{mutex_};
    auto it = pending_.find(request_id);
    if (it == pending_.end()) return;
    cb = std::move(it->second.on_done);
    outcome = std::move(it->second.outcome);
    pending_.erase(it);
  }
  // The answer the worker gave, now committed; a replay has none and reads the journal's.
  cb(outcome ? std::move(*outcome) : outcome_of_completion(completion_record));
}

std::size_t journaled_port::pending() const {
  std::lock_guard<std::mutex> lock{mutex_};
  return pending_.size();
}

}  // namespace bastion::coordination
