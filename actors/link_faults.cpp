#include "actors/link_faults.hpp"

#include "actors/replicator_errors.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace bastion::actors {

std::string link_fault::describe() const {
  if (is_default()) return "none";
  std::ostringstream out;
  const char* sep = "";
  auto word = [&](const std::string& w) {
    out << sep << w;
    sep = " ";
  };
  if (cut_outgoing) word("cut_outgoing");
  if (cut_incoming) word("cut_incoming");
  if (drop_ratio != 0) {
    std::ostringstream r;
    r << "drop_ratio=" << drop_ratio;
    word(r.str());
  }
  if (delay_ms != 0) word("delay_ms=" + std::to_string(delay_ms));
  return out.str();
}

bool operator==(const link_fault& a, const link_fault& b) noexcept {
  return a.cut_outgoing == b.cut_outgoing && a.cut_incoming == b.cut_incoming &&
         a.drop_ratio == b.drop_ratio && a.delay_ms == b.delay_ms;
}

caf::error link_faults::set(std::uint64_t peer_id, link_fault f) {
  if (peer_id == 0)
    return make_error(replicator_errc::bad_link_fault,
                      "peer id 0 names no replica (Raft server ids start at 1)");
  // Written so that NaN fails too: it compares false with everything.
  if (!(f.drop_ratio >= 0 && f.drop_ratio <= 1)) {
    std::ostringstream v;
    v << f.drop_ratio;
    return make_error(
        replicator_errc::bad_link_fault,
        "drop_ratio " + v.str() + " for peer " + std::to_string(peer_id) + " is outside [0, 1]");
  }
  if (f.delay_ms > delay_ms_max)
    return make_error(replicator_errc::bad_link_fault,
                      "delay_ms " + std::to_string(f.delay_ms) + " for peer " +
                          std::to_string(peer_id) + " exceeds " + std::to_string(delay_ms_max));
  std::lock_guard<std::mutex> guard{mutex_};
  if (f.is_default())
    faults_.erase(peer_id);
  else
    faults_[peer_id] = f;
  return caf::none;
}

void link_faults::clear(std::uint64_t peer_id) {
  std::lock_guard<std::mutex> guard{mutex_};
  faults_.erase(peer_id);
}

void link_faults::clear_all() {
  std::lock_guard<std::mutex> guard{mutex_};
  faults_.clear();
}

link_fault link_faults::get(std::uint64_t peer_id) const {
  std::lock_guard<std::mutex> guard{mutex_};
  auto it = faults_.find(peer_id);
  return it == faults_.end() ? link_fault{} : it->second;
}

std::vector<std::pair<std::uint64_t, link_fault>> link_faults::all() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return {faults_.begin(), faults_.end()};
}

std::optional<std::int64_t> link_delay_order::delay_for(std::uint64_t peer_id, std::int64_t now_ms,
                                                        unsigned delay_ms) {
  std::int64_t due_ms = now_ms + static_cast<std::int64_t>(delay_ms);
  auto it = last_due_ms_.find(peer_id);
  if (it != last_due_ms_.end()) {
    if (it->second < now_ms) {
      last_due_ms_.erase(it);  // everything held for this link has been delivered
    } else {
      due_ms = std::max(due_ms, it->second);
      it->second = due_ms;
      return due_ms - now_ms;
    }
  }
  if (delay_ms == 0) return std::nullopt;
  last_due_ms_[peer_id] = due_ms;
  return due_ms - now_ms;
}

}  // namespace bastion::actors
