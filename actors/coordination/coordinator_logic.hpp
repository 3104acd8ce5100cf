#pragma once
// The site coordinator's decisions (DESIGN.md §5), without CAF: it follows the journal's Raft
// role and turns it into what the site does.
//
//   follower/candidate ──(becomes leader in term T)──▶ committing the epoch-start for epoch T
//     ──(committed)──▶ applying the committed configuration ──▶ checking models are loaded
//     ──▶ running the canaries ──▶ ready: the release gate opens for epoch T, /readyz is true.
//   Any role change away from leader (or to a newer term) closes the gate at once: unreleased
//   work fails with retryable errors (release_gate::lose_leadership).
//   A step that fails is retried after `retry_after`; after `attempts_max` failures in a row
//   the leader hands leadership to the most preferred caught-up peer instead of staying a
//   leader that cannot serve.
//   A ready leader hands leadership to a MORE preferred site (prod > dr-local > dr-remote)
//   once that site's replica has been caught up for `preferred_hold`, so the city sites lead
//   whenever they can. A committed leadership preference (an operator's switchover) puts one
//   site ahead of that order until the next preference.
//
// Epoch = the Raft term in which the leader committed its epoch-start record: it only grows,
// and a leader of term T never releases anything under an older epoch.
//
// Not thread-safe: owned by the coordinator actor. Time is passed in.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bastion::coordination {

/// DESIGN.md §1: lower is more preferred.
enum class site_rank : std::uint8_t { prod = 0, dr_local = 1, dr_remote = 2 };
std::optional<site_rank> parse_site(const std::string& s) noexcept;
const char* to_string(site_rank s) noexcept;

enum class coordinator_phase : std::uint8_t {
  follower,          // or candidate: the gate is closed, requests are redirected
  committing_epoch,  // leader: the epoch-start record is proposed
  applying_config,
  checking_models,
  running_canaries,
  ready,  // the gate is open
};
const char* to_string(coordinator_phase p) noexcept;

struct coordinator_settings {
  site_rank self = site_rank::prod;
  std::uint64_t self_id = 0;  // this site's replica id
  std::chrono::milliseconds retry_after{500};
  int attempts_max = 5;
  std::chrono::milliseconds preferred_hold{2000};
};

enum class action_kind : std::uint8_t {
  propose_epoch_start,  // epoch
  apply_config,
  check_models,
  run_canaries,
  open_gate,   // epoch
  close_gate,  // leader_address: where to redirect (may be empty: unknown)
  /// Stop admitting (redirect new requests to `target`), let admitted work finish for at most
  /// the drain time, then transfer leadership to replica `target`. Nothing acknowledged is lost.
  drain_and_transfer,
};
const char* to_string(action_kind k) noexcept;

struct coordinator_action {
  action_kind kind = action_kind::close_gate;
  std::uint64_t epoch = 0;
  std::uint64_t target = 0;
  std::string leader_address;
  std::string reason;  // for the log and the operator
};

class coordinator_logic {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  explicit coordinator_logic(coordinator_settings s);

  /// The replicator's role, term and known leader changed (or were reported again).
  std::vector<coordinator_action> on_role(bool leader, std::uint64_t term, std::uint64_t leader_id,
                                          const std::string& leader_address);

  /// The epoch-start record of `epoch` committed (ignored unless it is the pending one).
  std::vector<coordinator_action> on_epoch_committed(std::uint64_t epoch, time_point now);

  /// Results of the actions apply_config, check_models and run_canaries for `epoch` (results
  /// of an older epoch are ignored). `why` says what failed.
  std::vector<coordinator_action> on_step_result(action_kind step, std::uint64_t epoch, bool ok,
                                                 const std::string& why, time_point now);

  /// A peer's replica is (or is no longer) caught up with this leader's log.
  std::vector<coordinator_action> on_peer_progress(std::uint64_t peer_id, site_rank rank,
                                                   bool caught_up, time_point now);

  /// A leadership preference committed (switchover): `site` now comes first, the default
  /// order after it; nullopt restores the default order. A ready leader that is not `site`
  /// hands over once `site` is a caught-up peer (at once when it already is).
  std::vector<coordinator_action> on_preference(std::optional<site_rank> site, time_point now);

  /// Retries and the preferred-site handover run from here; call it every few hundred ms.
  std::vector<coordinator_action> on_tick(time_point now);

  coordinator_phase phase() const noexcept { return phase_; }
  std::uint64_t term() const noexcept { return term_; }
  std::uint64_t epoch() const noexcept { return phase_ == coordinator_phase::ready ? term_ : 0; }
  bool ready() const noexcept { return phase_ == coordinator_phase::ready; }
  const std::string& last_failure() const noexcept { return last_failure_; }
  std::optional<site_rank> preferred() const noexcept { return preferred_; }

 private:
  struct peer {
    site_rank rank = site_rank::dr_remote;
    bool caught_up = false;
    time_point since{};
  };
  std::vector<coordinator_action> enter(coordinator_phase p);
  std::vector<coordinator_action> step_away(const std::string& why);
  std::optional<std::uint64_t> best_peer(bool more_preferred_only, time_point now) const;
  int order_of(site_rank r) const noexcept;  // lower leads first; the preference is -1

  coordinator_settings settings_;
  coordinator_phase phase_ = coordinator_phase::follower;
  std::uint64_t term_ = 0;
  std::uint64_t opened_epoch_ = 0;  // the newest epoch whose gate was opened
  std::string leader_address_;
  int failures_ = 0;
  std::optional<time_point> retry_at_;
  std::optional<time_point> transfer_since_;  // a handover is under way
  std::map<std::uint64_t, peer> peers_;
  std::string last_failure_;
  std::optional<site_rank> preferred_;
};

}  // namespace bastion::coordination
