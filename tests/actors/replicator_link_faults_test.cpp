// The inter-site fault switch (link_faults) as the replicator applies it, on the simulated
// three-site cluster: replica 1 is prod, 2 dr-local, 3 dr-remote. Each replica has its own
// switch (sim_node::faults), as each site's node has its admin endpoint; the simulated network
// itself stays perfect, so everything lost or late here is the switch's doing.

#define CAF_SUITE replicator_link_faults

#include "actors/link_faults.hpp"
#include "actors/replicator.hpp"
#include "runtime/metrics/registry.hpp"
#include "tests/actors/replicator_fixture.hpp"

#include <caf/test/dsl.hpp>
#include <caf/test/unit_test_impl.hpp>

using namespace bastion;
using namespace bastion::actors;
using sim::bytes;
using sim::proposal_record;

namespace {

constexpr std::uint64_t prod = 1;
constexpr std::uint64_t dr_local = 2;
constexpr std::uint64_t dr_remote = 3;

link_fault cut_both() {
  link_fault f;
  f.cut_outgoing = true;
  f.cut_incoming = true;
  return f;
}

link_fault cut_out() {
  link_fault f;
  f.cut_outgoing = true;
  return f;
}

link_fault delayed(unsigned ms) {
  link_fault f;
  f.delay_ms = ms;
  return f;
}

struct fault_fixture : sim::fixture {
  link_faults& faults_of(std::uint64_t id) { return *cluster->node(id).faults; }

  // Elects a leader and, unless it is prod already, hands leadership to prod.
  void prod_leads() {
    auto leader = elect();
    if (leader != prod) {
      cluster->transfer(leader, prod);
      CAF_REQUIRE(cluster->advance_until([&] { return cluster->leader() == prod; }, 10000));
    }
    cluster->advance(500);  // heartbeats tell every follower
    for (auto id : cluster->ids()) CAF_REQUIRE_EQUAL(status_of(id).leader_id, prod);
  }

  // Proposes `n` records to prod one after the other; the mean time from proposal to
  // acknowledgement, in simulated ms. Every one must be acknowledged.
  double mean_commit_ms(const std::string& prefix, int n) {
    std::int64_t total_ms = 0;
    for (int i = 0; i < n; ++i) {
      const auto start_ms = cluster->now_ms();
      auto slot = cluster->propose(prod, bytes(prefix + std::to_string(i)));
      cluster->advance_until(
          [&] { return cluster->proposal(slot).outcome != proposal_record::pending; }, 5000);
      CAF_REQUIRE(cluster->proposal(slot).outcome == proposal_record::acked);
      total_ms += cluster->now_ms() - start_ms;
    }
    return static_cast<double>(total_ms) / n;
  }
};

}  // namespace

CAF_TEST_FIXTURE_SCOPE(replicator_link_fault_tests, fault_fixture)

CAF_TEST(cutting prod and dr - local apart keeps prod leading and committing through dr - remote) {
  prod_leads();
  const auto term = status_of(prod).term;
  const auto dr_local_applied = status_of(dr_local).last_applied;
  // Both directions, switched at prod's end only (as a test script on prod would).
  CAF_REQUIRE(!faults_of(prod).set(dr_local, cut_both()));
  cluster->advance(5000);  // ten election timeouts: dr-local times out again and again
  auto slots = propose_n("cut-", 5);
  CAF_CHECK(all_acked(slots));
  CAF_CHECK_EQUAL(cluster->leader(), prod);
  // dr-local's pre-votes reach dr-remote, which hears prod and so refuses them (libraft's
  // pre-vote: a follower with a live leader grants none); pre-vote never raises a term, so
  // nobody's term moved and prod was never disrupted.
  CAF_CHECK_EQUAL(status_of(prod).term, term);
  CAF_CHECK_EQUAL(status_of(dr_remote).term, term);
  CAF_CHECK_EQUAL(status_of(dr_local).term, term);
  CAF_CHECK_EQUAL(status_of(dr_remote).leader_id, prod);
  cluster->advance(200);  // the next heartbeat tells dr-remote the commit index
  // dr-local heard nothing of the new records; dr-remote has them all.
  CAF_CHECK_EQUAL(status_of(dr_local).last_applied, dr_local_applied);
  CAF_CHECK_EQUAL(status_of(dr_remote).last_applied, status_of(prod).commit_index);
  const auto s = status_of(prod);
  CAF_MESSAGE("prod: " << s.frames_fault_outgoing_dropped << " frames to dr-local lost, "
                       << s.frames_dropped_fault << " from it dropped");
  CAF_CHECK_GREATER(s.frames_fault_outgoing_dropped, 0u);
  CAF_CHECK_GREATER(s.frames_dropped_fault, 0u);  // dr-local's pre-vote requests
  CAF_CHECK_EQUAL(s.frames_dropped, s.frames_dropped_fault);
  // Healed, dr-local catches up and agrees.
  faults_of(prod).clear_all();
  check_invariants();
  CAF_CHECK_EQUAL(state_of(dr_local), state_of(prod));
}

CAF_TEST(a one - way cut from the leader silences a follower without an election) {
  prod_leads();
  const auto term = status_of(prod).term;
  const auto before = status_of(dr_local);
  CAF_REQUIRE(!faults_of(prod).set(dr_local, cut_out()));
  cluster->advance(5000);
  CAF_CHECK(all_acked(propose_n("oneway-", 5)));
  CAF_CHECK_EQUAL(cluster->leader(), prod);
  // dr-local still talks to both others (its pre-votes arrive), and is refused by both.
  for (auto id : cluster->ids()) CAF_CHECK_EQUAL(status_of(id).term, term);
  const auto after = status_of(dr_local);
  CAF_CHECK_EQUAL(after.last_applied, before.last_applied);
  CAF_CHECK_EQUAL(status_of(prod).frames_dropped_fault, 0u);  // nothing cut coming in
  CAF_CHECK_GREATER(status_of(prod).frames_fault_outgoing_dropped, 0u);
  faults_of(prod).clear(dr_local);
  check_invariants();
}

CAF_TEST(a cut at the receiving end works like one at the sending end) {
  prod_leads();
  const auto before = status_of(dr_local);
  link_fault deaf;
  deaf.cut_incoming = true;
  CAF_REQUIRE(!faults_of(dr_local).set(prod, deaf));
  cluster->advance(3000);
  CAF_CHECK(all_acked(propose_n("deaf-", 3)));
  const auto after = status_of(dr_local);
  CAF_CHECK_EQUAL(after.last_applied, before.last_applied);
  CAF_CHECK_GREATER(after.frames_dropped_fault, 0u);
  CAF_CHECK_EQUAL(after.frames_dropped, before.frames_dropped + (after.frames_dropped_fault -
                                                                 before.frames_dropped_fault));
  CAF_CHECK_EQUAL(status_of(prod).frames_fault_outgoing_dropped, 0u);
  faults_of(dr_local).clear_all();
  check_invariants();
}

CAF_TEST(drop ratio 1 is a cut and a partial ratio replays exactly from the seed) {
  prod_leads();
  link_fault all_lost;
  all_lost.drop_ratio = 1.0;
  const auto before = status_of(dr_local);
  CAF_REQUIRE(!faults_of(prod).set(dr_local, all_lost));
  cluster->advance(3000);
  CAF_CHECK(all_acked(propose_n("lost-", 3)));
  CAF_CHECK_EQUAL(status_of(dr_local).last_applied, before.last_applied);
  CAF_CHECK_EQUAL(status_of(dr_local).term, before.term);
  CAF_CHECK_GREATER(status_of(prod).frames_fault_outgoing_dropped, 0u);

  // A partial ratio: some frames are lost, commits still go through, and the same seed loses
  // the same frames.
  auto run = [&] {
    rebuild(sim::cluster_options{});
    prod_leads();
    link_fault lossy;
    lossy.drop_ratio = 0.3;
    CAF_REQUIRE(!faults_of(prod).set(dr_local, lossy));
    CAF_REQUIRE(!faults_of(prod).set(dr_remote, lossy));
    CAF_CHECK(all_acked(propose_n("lossy-", 20, 20000)));
    cluster->advance(2000);
    return status_of(prod).frames_fault_outgoing_dropped;
  };
  const auto first = run();
  check_invariants();
  const auto second = run();
  CAF_MESSAGE("30% loss on prod's links: " << first << " frames lost");
  CAF_CHECK_GREATER(first, 0u);
  CAF_CHECK_EQUAL(first, second);
  check_invariants();
}

CAF_TEST(a 50 ms link to dr - remote costs nothing until dr - local is cut then about 50 ms) {
  prod_leads();
  const double base_ms = mean_commit_ms("base-", 10);
  CAF_REQUIRE(!faults_of(prod).set(dr_remote, delayed(50)));
  cluster->advance(200);
  // prod + dr-local is a majority: the slow link is not on the commit path.
  const double slow_remote_ms = mean_commit_ms("remote-", 10);
  CAF_REQUIRE(!faults_of(prod).set(dr_local, cut_out()));
  cluster->advance(200);
  // Now prod + dr-remote is the only majority: every commit waits for the 50 ms hop out (the
  // answer comes back undelayed: delay_ms is one way, set at the sending end).
  const double via_remote_ms = mean_commit_ms("via-remote-", 10);
  CAF_MESSAGE("mean commit latency: " << base_ms << " ms normally, " << slow_remote_ms
                                      << " ms with dr-remote 50 ms away, " << via_remote_ms
                                      << " ms with dr-local cut too");
  CAF_CHECK_LESS(slow_remote_ms, base_ms + 10);
  CAF_CHECK_GREATER_OR_EQUAL(via_remote_ms, base_ms + 40);
  CAF_CHECK_LESS_OR_EQUAL(via_remote_ms, base_ms + 70);
  CAF_CHECK_GREATER(status_of(prod).frames_fault_delayed, 0u);
  CAF_CHECK_EQUAL(cluster->leader(), prod);
  faults_of(prod).clear_all();
  check_invariants();
}

CAF_TEST(frames sent after a delay is lifted wait behind the ones still in flight) {
  prod_leads();
  CAF_REQUIRE(!faults_of(prod).set(dr_local, delayed(300)));
  CAF_REQUIRE(!faults_of(prod).set(dr_remote, delayed(300)));
  auto early = cluster->propose(prod, bytes("early"));
  cluster->advance(50);
  const auto delayed_before = status_of(prod).frames_fault_delayed;
  faults_of(prod).clear_all();
  // The delay is gone, but frames held until ~300 ms are still in flight: what prod sends now
  // is held behind them, so each link stays in order.
  auto late = cluster->propose(prod, bytes("late"));
  cluster->advance(20);
  CAF_CHECK_GREATER(status_of(prod).frames_fault_delayed, delayed_before);
  CAF_CHECK(cluster->proposal(early).outcome == proposal_record::pending);
  CAF_CHECK(cluster->proposal(late).outcome == proposal_record::pending);
  cluster->advance(1000);
  CAF_CHECK(cluster->proposal(early).outcome == proposal_record::acked);
  CAF_CHECK(cluster->proposal(late).outcome == proposal_record::acked);
  CAF_CHECK_LESS(cluster->proposal(early).index, cluster->proposal(late).index);
  // Once everything held is delivered, frames go straight out again.
  const auto delayed_after = status_of(prod).frames_fault_delayed;
  cluster->advance(1000);
  CAF_CHECK_EQUAL(status_of(prod).frames_fault_delayed, delayed_after);
  check_invariants();
}

CAF_TEST(fault counters appear in the Prometheus text) {
  metrics::registry reg;
  sim::cluster_options opt;
  opt.metrics = &reg;
  rebuild(opt);
  prod_leads();
  CAF_REQUIRE(!faults_of(prod).set(dr_local, cut_both()));
  CAF_REQUIRE(!faults_of(prod).set(dr_remote, delayed(20)));
  cluster->advance(2000);
  const auto s = status_of(prod);
  const auto text = reg.render_prometheus();
  const std::string l = "{replica=\"1\"}";
  CAF_CHECK(text.find("bastion_replicator_frames_fault_outgoing_dropped_total" + l + " " +
                      std::to_string(s.frames_fault_outgoing_dropped)) != std::string::npos);
  CAF_CHECK(text.find("bastion_replicator_frames_fault_delayed_total" + l + " " +
                      std::to_string(s.frames_fault_delayed)) != std::string::npos);
  CAF_CHECK(text.find("bastion_replicator_frames_dropped_total{replica=\"1\",reason=\"fault_cut_"
                      "incoming\"} " +
                      std::to_string(s.frames_dropped_fault)) != std::string::npos);
  CAF_CHECK_GREATER(s.frames_dropped_fault, 0u);
}

// Issue 7's cut scenario: "commits slow down and an alert fires, nothing is lost".
CAF_TEST(a cut peer raises lag and silence alerts on the leader which end once healed) {
  metrics::registry reg;
  sim::cluster_options opt;
  opt.metrics = &reg;
  rebuild(opt);
  prod_leads();
  // A 50 ms delay to dr-remote is the remote link working as built: no alert.
  CAF_REQUIRE(!faults_of(prod).set(dr_remote, delayed(50)));
  CAF_REQUIRE(!faults_of(prod).set(dr_local, cut_both()));
  // Writes keep coming while dr-local is cut (one every 500 ms for 8 s).
  for (int i = 0; i < 16; ++i) {
    CAF_CHECK(all_acked(propose_n("lag-" + std::to_string(i) + "-", 1)));
    cluster->advance(500);
  }
  auto s = status_of(prod);
  CAF_REQUIRE_EQUAL(s.peer_ids.size(), 2u);
  CAF_REQUIRE_EQUAL(s.peer_lag_ms.size(), 2u);
  for (std::size_t i = 0; i < s.peer_ids.size(); ++i)
    CAF_MESSAGE("peer " << s.peer_ids[i] << ": lag " << s.peer_lag_ms[i] << " ms, silent "
                        << s.peer_silence_ms[i] << " ms");
  std::string alerts;
  for (const auto& a : s.alerts) alerts += a + "\n";
  CAF_MESSAGE("prod's alerts:\n" << alerts);
  CAF_CHECK_EQUAL(s.alerts.size(), 2u);
  CAF_CHECK(alerts.find("journal_peer_lagging peer 2:") != std::string::npos);
  CAF_CHECK(alerts.find("journal_peer_silent peer 2:") != std::string::npos);
  CAF_CHECK(alerts.find("peer 3") == std::string::npos);
  for (std::size_t i = 0; i < s.peer_ids.size(); ++i) {
    if (s.peer_ids[i] == dr_local) CAF_CHECK_GREATER(s.peer_lag_ms[i], 5000);
    if (s.peer_ids[i] == dr_remote) CAF_CHECK_LESS(s.peer_lag_ms[i], 1000);
  }
  CAF_CHECK(status_of(dr_remote).alerts.empty());  // followers do not judge
  const std::string lagging =
      "bastion_alert_firing{replica=\"1\",peer=\"2\",alert=\"journal_peer_lagging\"} ";
  auto text = reg.render_prometheus();
  CAF_CHECK(text.find(lagging + "1") != std::string::npos);
  CAF_CHECK(text.find("bastion_alerts_fired_total{replica=\"1\",peer=\"2\",alert=\"journal_"
                      "peer_lagging\"} 1") != std::string::npos);
  CAF_CHECK(text.find("bastion_replicator_peer_lag_seconds{replica=\"1\",peer=\"2\"}") !=
            std::string::npos);
  // Healed: dr-local catches up, both alerts end.
  faults_of(prod).clear_all();
  cluster->advance(2000);
  s = status_of(prod);
  CAF_CHECK(s.alerts.empty());
  text = reg.render_prometheus();
  CAF_CHECK(text.find(lagging + "0") != std::string::npos);
  check_invariants();
}

CAF_TEST_FIXTURE_SCOPE_END()
