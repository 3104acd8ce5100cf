#include "actors/scheduling/capacity_policy.hpp"

#include <cmath>

namespace bastion::scheduling {

const char* to_string(priority_class c) noexcept {
  switch (c) {
    case priority_class::production:
      return "production";
    case priority_class::interactive:
      return "interactive";
    case priority_class::batch:
      return "batch";
    case priority_class::training:
      return "training";
  }
  return "unknown";
}

std::optional<priority_class> parse_priority_class(const std::string& s) noexcept {
  for (std::size_t i = 0; i < class_count; ++i)
    if (s == to_string(static_cast<priority_class>(i))) return static_cast<priority_class>(i);
  return std::nullopt;
}

local_time to_local(std::chrono::system_clock::time_point t, std::chrono::minutes utc_offset) {
  using namespace std::chrono;
  const auto local_min = duration_cast<minutes>(t.time_since_epoch()) + utc_offset;
  const auto day =
      static_cast<long long>(std::floor(static_cast<double>(local_min.count()) / 1440.0));
  const int minute = static_cast<int>(local_min.count() - day * 1440);
  // 1970-01-01 was a Thursday (weekday 3 with Monday = 0).
  const int weekday = static_cast<int>(((day % 7) + 7 + 3) % 7);
  return {weekday, minute};
}

capacity_policy::capacity_policy(std::vector<capacity_window> windows, window_shares fallback)
    : windows_(std::move(windows)), fallback_(fallback) {}

std::optional<std::string> capacity_policy::validate() const {
  auto check = [](const std::string& where, const window_shares& s) -> std::optional<std::string> {
    double reserved = 0.0;
    for (std::size_t c = 0; c < class_count; ++c) {
      const char* cls = to_string(static_cast<priority_class>(c));
      if (!(s.reserve[c] >= 0.0 && s.reserve[c] <= 1.0))
        return where + ": reserve for " + cls + " = " + std::to_string(s.reserve[c]) +
               " is outside [0, 1]";
      if (!(s.limit[c] >= 0.0 && s.limit[c] <= 1.0))
        return where + ": limit for " + cls + " = " + std::to_string(s.limit[c]) +
               " is outside [0, 1]";
      if (s.limit[c] < s.reserve[c]) return where + ": limit for " + cls + " is below its reserve";
      reserved += s.reserve[c];
    }
    if (reserved > 1.0 + 1e-9)
      return where + ": reserves add up to " + std::to_string(reserved) +
             ", more than all capacity";
    return std::nullopt;
  };
  for (const auto& w : windows_) {
    const std::string where = "capacity window '" + w.name + "'";
    if (w.start_minute < 0 || w.start_minute >= 1440 || w.end_minute < 0 || w.end_minute > 1440)
      return where + ": start/end must be minutes within a day";
    if (w.days_mask == 0 || w.days_mask > 0x7f) return where + ": names no valid day";
    if (auto err = check(where, w.shares)) return err;
  }
  return check("default capacity shares", fallback_);
}

const capacity_window* capacity_policy::window_at(local_time t) const {
  for (const auto& w : windows_) {
    const bool wraps = w.end_minute <= w.start_minute;
    bool in = false;
    if (!wraps) {
      in = (w.days_mask >> t.weekday & 1) && t.minute >= w.start_minute && t.minute < w.end_minute;
    } else {
      // A window that wraps midnight belongs to the day it starts on.
      const int yesterday = (t.weekday + 6) % 7;
      in = ((w.days_mask >> t.weekday & 1) && t.minute >= w.start_minute) ||
           ((w.days_mask >> yesterday & 1) && t.minute < w.end_minute);
    }
    if (in) return &w;
  }
  return nullptr;
}

const window_shares& capacity_policy::shares_at(local_time t) const {
  const auto* w = window_at(t);
  return w ? w->shares : fallback_;
}

const std::string& capacity_policy::window_name_at(local_time t) const {
  static const std::string default_name = "default";
  const auto* w = window_at(t);
  return w ? w->name : default_name;
}

std::size_t capacity_policy::allowed_slots(
    local_time t, priority_class c, std::size_t total,
    const std::array<std::size_t, class_count>& running) const {
  const auto& s = shares_at(t);
  const auto ci = static_cast<std::size_t>(c);
  // Slots held back for higher classes: each one's reservation it does not use yet. A
  // reservation never holds against a higher class: capacity lent to batch at night is
  // taken back by production.
  std::size_t held_for_others = 0;
  for (std::size_t o = 0; o < ci; ++o) {
    const auto reserved =
        static_cast<std::size_t>(std::ceil(s.reserve[o] * static_cast<double>(total) - 1e-9));
    if (reserved > running[o]) held_for_others += reserved - running[o];
  }
  std::size_t others_running = 0;
  for (std::size_t o = 0; o < class_count; ++o)
    if (o != ci) others_running += running[o];
  const std::size_t taken = others_running + held_for_others;
  const std::size_t by_capacity = total > taken ? total - taken : 0;
  const auto by_limit =
      static_cast<std::size_t>(std::floor(s.limit[ci] * static_cast<double>(total) + 1e-9));
  return std::min(by_capacity, by_limit);
}

}  // namespace bastion::scheduling
