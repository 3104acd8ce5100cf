#pragma once
// The time-window capacity policy of the customer's design (REQUIREMENTS.md 7.1): for example
// on weekdays 08:00-20:00 at least 80% of capacity is kept for production, at night idle
// capacity is lent to batch work, at weekends to back-tests (training class). Pure data and
// arithmetic, no clock: the caller passes the local time, so tests replay any hour exactly.

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bastion::scheduling {

/// Scheduler classes, highest precedence first (DESIGN.md §4).
enum class priority_class : std::uint8_t {
  production = 0,
  interactive = 1,
  batch = 2,
  training = 3
};
constexpr std::size_t class_count = 4;

const char* to_string(priority_class c) noexcept;
std::optional<priority_class> parse_priority_class(const std::string& s) noexcept;

/// Shares of total capacity for one time window.
struct window_shares {
  /// reserve[c]: fraction of capacity kept for class c; lower classes may not occupy it, even
  /// when it is idle (so production never waits for batch work to finish at 08:00).
  std::array<double, class_count> reserve{0.0, 0.0, 0.0, 0.0};
  /// limit[c]: the largest fraction class c may occupy (1.0 = no limit).
  std::array<double, class_count> limit{1.0, 1.0, 1.0, 1.0};
};

struct capacity_window {
  std::string name;            // for logs and metrics: "business-hours", "night", "weekend"
  std::uint8_t days_mask = 0;  // bit 0 = Monday ... bit 6 = Sunday
  int start_minute = 0;        // local minutes after midnight, inclusive
  int end_minute = 24 * 60;    // exclusive; end < start wraps past midnight into the next day
  window_shares shares;
};

/// Local time as the policy needs it: day of week (0 = Monday) and minute of the day.
struct local_time {
  int weekday = 0;
  int minute = 0;
};

/// Converts a Unix time to local time at a fixed UTC offset (China has no DST; sites in
/// other zones configure their offset).
local_time to_local(std::chrono::system_clock::time_point t, std::chrono::minutes utc_offset);

class capacity_policy {
 public:
  capacity_policy() = default;
  /// Windows are matched in order; the first that contains the time wins, else `fallback`.
  capacity_policy(std::vector<capacity_window> windows, window_shares fallback);

  /// Checks shares are in [0, 1], reservations sum to at most 1, limits at least reserves and
  /// minutes in range; returns a message naming the window and value, or nullopt when valid.
  std::optional<std::string> validate() const;

  const window_shares& shares_at(local_time t) const;
  /// Name of the window in force ("default" when none matches).
  const std::string& window_name_at(local_time t) const;

  /// How many of `total_slots` class `c` may occupy in total (running ones included), given
  /// what every class runs now: it may not eat into unused reservations of higher classes,
  /// nor exceed its limit. Integer arithmetic on whole slots, rounding reservations up (in favour
  /// of the reserving class) and limits down.
  std::size_t allowed_slots(local_time t, priority_class c, std::size_t total_slots,
                            const std::array<std::size_t, class_count>& running) const;

 private:
  const capacity_window* window_at(local_time t) const;
  std::vector<capacity_window> windows_;
  window_shares fallback_;
};

}  // namespace bastion::scheduling
