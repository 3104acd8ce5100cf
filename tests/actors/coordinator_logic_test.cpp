// The coordinator's decisions (actors/coordination/coordinator_logic): a new leader opens its
// gate only after its epoch-start commits, the configuration is applied, its models are loaded
// and the canaries pass; it closes the gate the moment it stops leading; failing steps are
// retried and then handed to a healthy peer; a more preferred site that has caught up gets
// leadership back. First the invariants on seeded random event sequences, then each rule.

#include "actors/coordination/coordinator_logic.hpp"

#include <catch2/catch.hpp>

#include <random>

using namespace bastion::coordination;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

const clock_type::time_point t0{};

coordinator_settings settings(site_rank self) {
  coordinator_settings s;
  s.self = self;
  s.self_id = 1;
  s.retry_after = 500ms;
  s.attempts_max = 3;
  s.preferred_hold = 2s;
  return s;
}

bool has(const std::vector<coordinator_action>& a, action_kind k) {
  for (const auto& x : a)
    if (x.kind == k) return true;
  return false;
}

/// Walks a fresh leader of `term` to ready; returns the open_gate action.
coordinator_action make_ready(coordinator_logic& c, std::uint64_t term, clock_type::time_point t) {
  auto a = c.on_role(true, term, 1, "self");
  REQUIRE(has(a, action_kind::propose_epoch_start));
  REQUIRE(c.on_epoch_committed(term, t).at(0).kind == action_kind::apply_config);
  REQUIRE(c.on_step_result(action_kind::apply_config, term, true, {}, t).at(0).kind ==
          action_kind::check_models);
  REQUIRE(c.on_step_result(action_kind::check_models, term, true, {}, t).at(0).kind ==
          action_kind::run_canaries);
  auto open = c.on_step_result(action_kind::run_canaries, term, true, {}, t);
  REQUIRE(open.size() == 1);
  REQUIRE(open[0].kind == action_kind::open_gate);
  return open[0];
}

}  // namespace

TEST_CASE("the gate opens only for the current term after every readiness step, on random events") {
  const int runs = (std::getenv("BASTION_LONG") && std::string{std::getenv("BASTION_LONG")} == "1")
                       ? 20000
                       : 2000;
  int opened = 0;
  for (int seed = 1; seed <= runs; ++seed) {
    std::mt19937_64 rng(static_cast<std::uint64_t>(seed));
    coordinator_logic c(settings(site_rank::dr_local));
    std::uint64_t raft_term = 1;
    bool raft_leader = false;
    // What the model knows happened in the current term while leading.
    bool epoch_committed = false, applied = false, models = false, canaries = false;
    bool gate_open = false;
    std::uint64_t last_open_epoch = 0;
    auto t = t0;
    for (int i = 0; i < 150; ++i) {
      t += std::chrono::milliseconds(rng() % 400);
      std::vector<coordinator_action> acts;
      const auto term_any = raft_term - (rng() % 3 == 0 ? 1 : 0);  // stale reports too
      switch (rng() % 8) {
        case 0: {
          const auto old_term = raft_term;
          const bool was_leader = raft_leader;
          if (rng() % 2) ++raft_term;
          raft_leader = rng() % 2;
          // The same report again (leader, same term) changes nothing; anything else restarts.
          if (!(was_leader && raft_leader && raft_term == old_term))
            epoch_committed = applied = models = canaries = false;
          acts = c.on_role(raft_leader, raft_term, raft_leader ? 1 : 2, "addr");
          break;
        }
        case 1:
          if (raft_leader && term_any == raft_term) epoch_committed = true;
          acts = c.on_epoch_committed(term_any, t);
          break;
        case 2:
        case 3:
        case 4: {
          const action_kind steps[] = {action_kind::apply_config, action_kind::check_models,
                                       action_kind::run_canaries};
          const auto step = steps[rng() % 3];
          const bool ok = rng() % 4 != 0;
          const auto phase_before = c.phase();
          acts = c.on_step_result(step, term_any, ok, "random failure", t);
          if (ok && raft_leader && term_any == raft_term && c.phase() != phase_before) {
            if (step == action_kind::apply_config) applied = true;
            if (step == action_kind::check_models) models = true;
            if (step == action_kind::run_canaries) canaries = true;
          }
          break;
        }
        case 5:
          acts = c.on_peer_progress(
              2 + rng() % 2, rng() % 2 ? site_rank::prod : site_rank::dr_remote, rng() % 2, t);
          break;
        default:
          acts = c.on_tick(t);
      }
      for (const auto& a : acts) {
        if (a.kind == action_kind::open_gate) {
          REQUIRE(raft_leader);
          REQUIRE(a.epoch == raft_term);
          REQUIRE(epoch_committed);
          REQUIRE(applied);
          REQUIRE(models);
          REQUIRE(canaries);
          REQUIRE(a.epoch > last_open_epoch);  // epochs only grow
          REQUIRE_FALSE(gate_open);
          last_open_epoch = a.epoch;
          gate_open = true;
          ++opened;
        }
        if (a.kind == action_kind::close_gate) gate_open = false;
        if (a.kind == action_kind::drain_and_transfer) REQUIRE(a.target != 1);
      }
      // A site that is not the leader of the newest term never has its gate open.
      if (!raft_leader) REQUIRE_FALSE(gate_open);
      REQUIRE(gate_open == c.ready());
    }
  }
  CHECK(opened > runs / 10);  // the sequences reach readiness often enough to mean something
}

TEST_CASE("a new leader becomes ready in order and its epoch is its term") {
  coordinator_logic c(settings(site_rank::prod));
  CHECK(c.on_role(true, 7, 1, "self").at(0).epoch == 7);
  CHECK(c.phase() == coordinator_phase::committing_epoch);
  CHECK(c.on_epoch_committed(6, t0).empty());  // an older epoch-start: not ours
  CHECK(c.on_step_result(action_kind::check_models, 7, true, {}, t0).empty());  // out of order
  CHECK_FALSE(c.ready());
  coordinator_logic d(settings(site_rank::prod));
  CHECK(make_ready(d, 7, t0).epoch == 7);
  CHECK(d.ready());
  CHECK(d.epoch() == 7);
}

TEST_CASE("losing leadership closes the gate at once and names the new leader") {
  coordinator_logic c(settings(site_rank::prod));
  make_ready(c, 3, t0);
  auto a = c.on_role(false, 4, 2, "dr-local:9000");
  REQUIRE(a.size() == 1);
  CHECK(a[0].kind == action_kind::close_gate);
  CHECK(a[0].leader_address == "dr-local:9000");
  CHECK(c.phase() == coordinator_phase::follower);
  CHECK(c.on_role(true, 3, 1, "self").empty());  // a stale report changes nothing
  CHECK_FALSE(c.ready());
}

TEST_CASE("a failing step is retried after the pause, then handed to the best caught-up peer") {
  coordinator_logic c(settings(site_rank::prod));
  c.on_role(true, 2, 1, "self");
  c.on_epoch_committed(2, t0);
  c.on_step_result(action_kind::apply_config, 2, true, {}, t0);
  c.on_peer_progress(3, site_rank::dr_remote, true, t0);
  c.on_peer_progress(2, site_rank::dr_local, true, t0);
  CHECK(c.on_step_result(action_kind::check_models, 2, false, "smollm2 not loaded", t0).empty());
  CHECK_THAT(c.last_failure(), Catch::Contains("smollm2 not loaded"));
  CHECK(c.on_tick(t0 + 400ms).empty());
  auto retry = c.on_tick(t0 + 600ms);
  REQUIRE(retry.size() == 1);
  CHECK(retry[0].kind == action_kind::check_models);
  c.on_step_result(action_kind::check_models, 2, false, "still not", t0 + 700ms);
  auto handover = c.on_step_result(action_kind::check_models, 2, false, "still not", t0 + 800ms);
  REQUIRE(handover.size() == 1);
  CHECK(handover[0].kind == action_kind::drain_and_transfer);
  CHECK(handover[0].target == 2);  // dr-local before dr-remote
  CHECK_FALSE(c.ready());
}

TEST_CASE("a ready leader hands leadership to a more preferred site once it has caught up") {
  coordinator_logic c(settings(site_rank::dr_remote));
  make_ready(c, 9, t0);
  CHECK(c.on_peer_progress(2, site_rank::prod, true, t0).empty());
  CHECK(c.on_tick(t0 + 1s).empty());  // not caught up long enough
  auto a = c.on_tick(t0 + 2s);
  REQUIRE(a.size() == 1);
  CHECK(a[0].kind == action_kind::drain_and_transfer);
  CHECK(a[0].target == 2);
  CHECK(c.on_tick(t0 + 3s).empty());  // one handover at a time

  coordinator_logic p(settings(site_rank::prod));
  make_ready(p, 9, t0);
  p.on_peer_progress(2, site_rank::dr_local, true, t0);
  CHECK(p.on_tick(t0 + 10s).empty());  // nobody is more preferred than prod

  coordinator_logic flap(settings(site_rank::dr_local));
  make_ready(flap, 4, t0);
  flap.on_peer_progress(2, site_rank::prod, true, t0);
  flap.on_peer_progress(2, site_rank::prod, false, t0 + 1s);  // fell behind again
  flap.on_peer_progress(2, site_rank::prod, true, t0 + 1500ms);
  CHECK(flap.on_tick(t0 + 2500ms).empty());  // the hold restarts when it catches up again
  CHECK(flap.on_tick(t0 + 3500ms).size() == 1);
}

TEST_CASE("a committed switchover preference puts one site first until the next preference") {
  // prod leads; the operator moves leadership to dr-local.
  coordinator_logic prod(settings(site_rank::prod));
  make_ready(prod, 5, t0);
  prod.on_peer_progress(2, site_rank::dr_local, true, t0);
  prod.on_peer_progress(3, site_rank::dr_remote, true, t0);
  CHECK(prod.on_tick(t0 + 10s).empty());
  auto a = prod.on_preference(site_rank::dr_local, t0 + 10s);
  REQUIRE(a.size() == 1);
  CHECK(a[0].kind == action_kind::drain_and_transfer);
  CHECK(a[0].target == 2);  // the preferred site, not merely any caught-up peer

  // dr-local, now leading with the same preference, does not hand back to prod...
  coordinator_logic local(settings(site_rank::dr_local));
  local.on_preference(site_rank::dr_local, t0);
  make_ready(local, 6, t0);
  local.on_peer_progress(2, site_rank::prod, true, t0);
  CHECK(local.on_tick(t0 + 10s).empty());
  CHECK(local.preferred() == site_rank::dr_local);
  // ...until the operator switches back: then prod is first again.
  auto back = local.on_preference(site_rank::prod, t0 + 11s);
  REQUIRE(back.size() == 1);
  CHECK(back[0].target == 2);

  // A preference for a site that is not caught up moves nothing; the default order applies to
  // the rest (dr-remote, preferred but behind, does not stop prod from staying).
  coordinator_logic p2(settings(site_rank::prod));
  make_ready(p2, 7, t0);
  p2.on_peer_progress(3, site_rank::dr_remote, false, t0);
  CHECK(p2.on_preference(site_rank::dr_remote, t0 + 1s).empty());
  auto later = p2.on_peer_progress(3, site_rank::dr_remote, true, t0 + 2s);
  CHECK(later.empty());  // caught up only now: the hold applies
  auto moved = p2.on_tick(t0 + 4s);
  REQUIRE(moved.size() == 1);
  CHECK(moved[0].target == 3);

  // A follower only records the preference.
  coordinator_logic f(settings(site_rank::dr_remote));
  CHECK(f.on_preference(site_rank::prod, t0).empty());
  CHECK(f.preferred() == site_rank::prod);
}
