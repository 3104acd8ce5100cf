#include "actors/coordination/release_gate.hpp"

#include <cassert>
#include <stdexcept>

namespace bastion::coordination {

const char* to_string(failure_code c) noexcept {
  switch (c) {
    case failure_code::not_primary:
      return "not_primary";
    case failure_code::outcome_unknown:
      return "outcome_unknown";
    case failure_code::overloaded:
      return "overloaded";
  }
  return "unknown";
}

release_gate::release_gate(release_gate_limits limits)
    : limits_(limits), outcomes_(limits.outcomes_max), fingerprints_(limits.outcomes_max) {}

void release_gate::open(std::uint64_t epoch) {
  // Epochs only grow: reopening an old epoch would let a deposed primary release again.
  if (epoch <= epoch_) throw std::logic_error("release_gate::open: epoch did not grow");
  assert(requests_.empty() && "lose_leadership() ends every request before a new epoch");
  epoch_ = epoch;
  open_ = true;
  admitting_ = true;
}

begin_result release_gate::begin(const std::string& request_id, const std::string& fingerprint) {
  if (const auto* f = fingerprints_.find(request_id);
      !fingerprint.empty() && f != nullptr && *f != fingerprint)
    return {begin_code::id_reused, {}};
  if (const auto* o = outcomes_.find(request_id); o != nullptr && !o->cancelled)
    return {begin_code::replay, o->outcome};
  if (!open_ || !admitting_) return {begin_code::not_primary, {}};
  if (requests_.count(request_id) != 0) return {begin_code::duplicate_in_flight, {}};
  if (requests_.size() >= limits_.requests_max) return {begin_code::overloaded, {}};
  requests_.emplace(request_id, request_state{});
  return {begin_code::started, {}};
}

std::vector<held_token> release_gate::on_token(const std::string& request_id, held_token token) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return {};  // failed or abandoned: its late tokens go nowhere
  auto& r = it->second;
  if (r.at == phase::streaming) return {std::move(token)};
  if (r.at == phase::completing) return {};  // a bug upstream; nothing leaves after finish
  if (r.held.size() >= limits_.held_tokens_max) {
    failures_.push_back({request_id, failure_code::overloaded});
    requests_.erase(it);
    return {};
  }
  r.held.push_back(std::move(token));
  return {};
}

std::vector<held_token> release_gate::admission_committed(const std::string& request_id) {
  auto it = requests_.find(request_id);
  if (it == requests_.end() || it->second.admitted) return {};
  it->second.admitted = true;
  if (it->second.at == phase::admitting) it->second.at = phase::streaming;
  std::vector<held_token> out;
  out.swap(it->second.held);
  return out;
}

bool release_gate::finish(const std::string& request_id) {
  auto it = requests_.find(request_id);
  if (it == requests_.end() || it->second.at == phase::completing) return false;
  // A request may finish before its admission commits (a short answer): its completion is
  // proposed behind the admission, and Raft commits them in that order.
  // Held tokens stay: they leave when the admission commits, before the final answer.
  it->second.at = phase::completing;
  return true;
}

bool release_gate::completion_committed(const std::string& request_id, const std::string& outcome,
                                        bool cancelled) {
  remember(request_id, outcome, cancelled);
  auto it = requests_.find(request_id);
  if (it == requests_.end() || it->second.at != phase::completing) return false;
  requests_.erase(it);
  return true;
}

bool release_gate::abandon(const std::string& request_id) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return true;
  if (it->second.admitted || it->second.at == phase::completing) return false;
  requests_.erase(it);
  return true;
}

std::vector<gate_failure> release_gate::lose_leadership() {
  open_ = false;
  std::vector<gate_failure> out = take_failures();
  for (const auto& [id, r] : requests_)
    out.push_back({id, r.admitted || r.at == phase::completing ? failure_code::outcome_unknown
                                                               : failure_code::not_primary});
  requests_.clear();
  return out;
}

std::vector<gate_failure> release_gate::take_failures() {
  std::vector<gate_failure> out;
  out.swap(failures_);
  return out;
}

void release_gate::admission_seen(const std::string& request_id, const std::string& fingerprint) {
  if (!fingerprint.empty()) fingerprints_.try_emplace(request_id, fingerprint);
}

void release_gate::remember(const std::string& request_id, const std::string& outcome,
                            bool cancelled) {
  auto [entry, added] = outcomes_.try_emplace(request_id, outcome_entry{outcome, cancelled});
  // The first answer wins; an answer replaces a cancellation (its retry ran again).
  if (!added && entry->cancelled && !cancelled) *entry = outcome_entry{outcome, false};
}

}  // namespace bastion::coordination
