// The replicator on CAF's deterministic test coordinator: three replicas, an in-memory
// network between them and a memory_store under each. Each scenario drives libraft through
// our raft_io and ends with the cluster invariants (tests/actors/replicator_sim.hpp).

#define CAF_SUITE replicator

#include "actors/replicator.hpp"
#include "actors/replicator_codec.hpp"
#include "actors/replicator_errors.hpp"
#include "runtime/wire/announce.hpp"
#include "tests/actors/replicator_sim.hpp"

#include <caf/test/dsl.hpp>
#include <caf/test/unit_test_impl.hpp>

using namespace bastion;
using namespace bastion::actors;
using sim::proposal_record;

namespace {

struct sim_config : caf::actor_system_config {
  sim_config() {
    wire::announce_wire_types(*this);
    announce_replicator_types(*this);
  }
};

std::vector<std::uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

struct fixture : test_coordinator_fixture<sim_config> {
  std::unique_ptr<sim::cluster> cluster;

  fixture() { cluster = std::make_unique<sim::cluster>(sys, sched, sim::cluster_options{}); }
  ~fixture() override { cluster.reset(); }

  std::uint64_t elect() {
    CAF_REQUIRE(cluster->advance_until([&] { return cluster->leader() != 0; }, 10000));
    return cluster->leader();
  }

  // Proposes `n` records to the leader and waits until each has an outcome.
  std::vector<std::size_t> propose_n(const std::string& prefix, int n,
                                     std::int64_t limit_ms = 5000) {
    std::vector<std::size_t> slots;
    for (int i = 0; i < n; ++i)
      slots.push_back(cluster->propose_to_leader(bytes(prefix + std::to_string(i))));
    cluster->advance_until(
        [&] {
          for (auto s : slots)
            if (cluster->proposal(s).outcome == proposal_record::pending) return false;
          return true;
        },
        limit_ms);
    return slots;
  }

  bool all_acked(const std::vector<std::size_t>& slots) {
    for (auto s : slots)
      if (cluster->proposal(s).outcome != proposal_record::acked) return false;
    return true;
  }

  replicator_status status_of(std::uint64_t id) {
    replicator_status out;
    auto handle = self->request(cluster->node(id).handle, caf::infinite, status_atom::value);
    sched.run();
    handle.receive([&](replicator_status& s) { out = std::move(s); },
                   [&](caf::error& err) { CAF_FAIL(sys.render(err)); });
    return out;
  }

  void check_invariants(bool settle = true) {
    if (settle) {
      auto why = cluster->heal_and_settle(30000);
      CAF_CHECK_EQUAL(why, "");
    }
    for (const auto& v : cluster->check_invariants()) CAF_ERROR(v);
  }
};

}  // namespace

CAF_TEST_FIXTURE_SCOPE(replicator_tests, fixture)

CAF_TEST(three replicas elect exactly one leader that the others follow) {
  const auto start_ms = cluster->now_ms();
  auto leader = elect();
  CAF_MESSAGE("replica " << leader << " leads after " << cluster->now_ms() - start_ms
                         << " simulated ms, " << cluster->net().delivered << " frames delivered");
  cluster->advance(1000);  // let heartbeats tell everyone
  CAF_CHECK_EQUAL(cluster->leader(), leader);
  for (auto id : cluster->ids()) {
    auto s = status_of(id);
    CAF_CHECK_EQUAL(s.leader_id, leader);
    CAF_CHECK(s.role == (id == leader ? replica_role::leader : replica_role::follower));
    CAF_CHECK_GREATER_OR_EQUAL(s.term, 2u);  // term 1 is the bootstrap
  }
  check_invariants(false);
}

CAF_TEST(proposals commit in order and every replica applies the same records) {
  elect();
  auto slots = propose_n("rec-", 20);
  CAF_REQUIRE(all_acked(slots));
  std::uint64_t prev = 0;
  for (auto s : slots) {
    CAF_CHECK_GREATER(cluster->proposal(s).index, prev);
    prev = cluster->proposal(s).index;
  }
  cluster->advance(500);
  for (auto id : cluster->ids()) {
    const auto& applied = cluster->node(id).applied.back();
    CAF_REQUIRE_EQUAL(applied.size(), 20u);
    for (std::size_t i = 0; i < applied.size(); ++i) {
      CAF_CHECK_EQUAL(applied[i].index, cluster->proposal(slots[i]).index);
      CAF_CHECK(applied[i].payload == bytes("rec-" + std::to_string(i)));
    }
  }
  check_invariants();
}

CAF_TEST(a follower refuses proposals and names the leader) {
  auto leader = elect();
  cluster->advance(500);
  const std::uint64_t follower = leader == 1 ? 2 : 1;
  replicator_actor h = cluster->node(follower).handle;
  caf::error refused;
  auto req = self->request(h, caf::infinite, propose_atom::value, bytes("x"));
  sched.run();
  req.receive([&](std::uint64_t) { CAF_FAIL("a follower accepted a proposal"); },
              [&](caf::error& err) { refused = std::move(err); });
  CAF_CHECK_EQUAL(refused.category(), replicator_category::value);
  CAF_CHECK_EQUAL(refused.code(), static_cast<std::uint8_t>(replicator_errc::not_leader));
  auto hint = leader_of(refused);
  CAF_REQUIRE(hint.has_value());
  CAF_CHECK_EQUAL(hint->id, leader);
  CAF_CHECK_EQUAL(hint->address, "replica-" + std::to_string(leader));
  CAF_CHECK(sys.render(refused).find("replicator.not_leader") != std::string::npos);
}

CAF_TEST(when the leader crashes the others elect a new one and keep committing) {
  auto first = elect();
  CAF_REQUIRE(all_acked(propose_n("before-", 5)));
  const auto first_term = cluster->node(first).term;
  cluster->crash(first);
  CAF_REQUIRE(cluster->advance_until(
      [&] { return cluster->leader() != 0 && cluster->leader() != first; }, 10000));
  auto second = cluster->leader();
  CAF_CHECK_NOT_EQUAL(second, first);
  CAF_CHECK_GREATER(cluster->node(second).term, first_term);
  CAF_REQUIRE(all_acked(propose_n("after-", 5)));
  // The crashed replica comes back from its store and catches up.
  cluster->restart(first);
  check_invariants();
  CAF_CHECK_EQUAL(cluster->node(first).applied.back().size(), 11u);  // 5 + 5 + final
}

CAF_TEST(an isolated leader cannot commit and the majority moves on) {
  auto old_leader = elect();
  CAF_REQUIRE(all_acked(propose_n("a-", 3)));
  cluster->net().isolate(old_leader, cluster->ids());
  auto stranded = cluster->propose(old_leader, bytes("stranded"));
  CAF_REQUIRE(cluster->advance_until(
      [&] {
        auto l = cluster->leader();
        return l != 0 && l != old_leader;
      },
      10000));
  CAF_REQUIRE(all_acked(propose_n("b-", 3)));
  // The old leader noticed it lost its quorum and failed the stranded proposal.
  cluster->advance_until(
      [&] { return cluster->proposal(stranded).outcome != proposal_record::pending; }, 5000);
  CAF_CHECK_EQUAL(cluster->proposal(stranded).outcome, proposal_record::failed);
  CAF_CHECK(cluster->proposal(stranded).error.find("lost_leadership") != std::string::npos);
  check_invariants();
  // The stranded record was never acknowledged and the new leader overwrote it.
  for (const auto& e : cluster->node(old_leader).applied.back())
    CAF_CHECK(e.payload != bytes("stranded"));
}

CAF_TEST(commits survive heavy message loss) {
  cluster->net().drop_permille = 300;
  elect();
  auto slots = propose_n("lossy-", 10, 30000);
  std::size_t acked = 0;
  for (auto s : slots) acked += cluster->proposal(s).outcome == proposal_record::acked;
  CAF_CHECK_GREATER(acked, 0u);
  CAF_CHECK_GREATER(cluster->net().dropped, 0u);
  check_invariants();
}

CAF_TEST(delayed and reordered frames do not break agreement) {
  cluster->net().delay_min_ms = 0;
  cluster->net().delay_max_ms = 60;  // wider than a heartbeat: frames overtake each other
  elect();
  auto slots = propose_n("late-", 20, 30000);
  CAF_CHECK(all_acked(slots));
  check_invariants();
}

CAF_TEST(acknowledged records survive every replica crashing with unflushed writes) {
  elect();
  auto durable = propose_n("durable-", 5);
  CAF_REQUIRE(all_acked(durable));
  // The disks stop: nothing proposed now can become durable, so nothing can be acknowledged.
  cluster->disk_flush_permille = 0;
  auto lost = propose_n("volatile-", 3, 1000);
  for (auto s : lost) CAF_CHECK_NOT_EQUAL(cluster->proposal(s).outcome, proposal_record::acked);
  for (auto id : cluster->ids()) cluster->crash(id);
  for (auto id : cluster->ids()) cluster->restart(id);
  cluster->disk_flush_permille = 1000;
  check_invariants();
  // Every acknowledged record is back, in order, on every replica.
  for (auto id : cluster->ids()) {
    const auto& applied = cluster->node(id).applied.back();
    CAF_REQUIRE_GREATER_OR_EQUAL(applied.size(), 6u);
    for (std::size_t i = 0; i < 5; ++i)
      CAF_CHECK(applied[i].payload == bytes("durable-" + std::to_string(i)));
  }
}

CAF_TEST(leadership moves to the requested replica) {
  auto leader = elect();
  CAF_REQUIRE(all_acked(propose_n("t-", 3)));
  cluster->advance(500);
  const std::uint64_t target = leader == 3 ? 1 : leader + 1;
  cluster->transfer(leader, target);
  cluster->advance_until([&] { return !cluster->transfer_results().empty(); }, 10000);
  CAF_REQUIRE_EQUAL(cluster->transfer_results().size(), 1u);
  CAF_CHECK_EQUAL(cluster->transfer_results().front(), "ok " + std::to_string(target));
  cluster->advance(500);
  CAF_CHECK_EQUAL(cluster->leader(), target);
  CAF_REQUIRE(all_acked(propose_n("u-", 3)));
  // Transferring to a server outside the configuration is a typed error.
  cluster->transfer(target, 42);
  cluster->advance_until([&] { return cluster->transfer_results().size() == 2; }, 5000);
  for (const auto& r : cluster->transfer_results()) CAF_MESSAGE("transfer: " << r);
  CAF_REQUIRE_EQUAL(cluster->transfer_results().size(), 2u);
  CAF_CHECK(cluster->transfer_results()[1].find("bad_target") != std::string::npos);
  check_invariants();
}

CAF_TEST(hostile frames are dropped and counted and the replica keeps working) {
  auto leader = elect();
  cluster->advance(300);
  const std::uint64_t victim = leader == 1 ? 2 : 1;
  auto before = status_of(victim);
  replicator_actor h = cluster->node(victim).handle;
  wire::frame garbage;
  garbage.kind = static_cast<std::uint16_t>(wire::frame_kind::raft_message);
  garbage.payload.assign(64, 0xab);
  self->send(h, garbage);
  wire::frame wrong_kind = garbage;
  wrong_kind.kind = static_cast<std::uint16_t>(wire::frame_kind::inference_request);
  self->send(h, wrong_kind);
  wire::frame empty;
  self->send(h, empty);
  // Well-formed Raft messages that must still be refused: a forged TimeoutNow (which would
  // make the victim campaign) carrying a seal this build cannot verify, and one addressed to
  // another replica.
  raft_message forged{};
  forged.type = RAFT_IO_TIMEOUT_NOW;
  forged.server_id = victim;
  forged.timeout_now.term = 1000;
  auto sealed = raft_codec::encode(forged, leader, "replica-" + std::to_string(leader));
  sealed.seal.assign(32, 0x01);
  self->send(h, sealed);
  forged.server_id = 99;
  self->send(h, raft_codec::encode(forged, leader, "replica-" + std::to_string(leader)));
  sched.run();
  auto after = status_of(victim);
  CAF_CHECK_EQUAL(after.frames_dropped - before.frames_dropped, 5u);
  CAF_CHECK_EQUAL(after.term, before.term);
  CAF_CHECK_EQUAL(after.role, replica_role::follower);
  CAF_CHECK(!after.last_error.empty());
  CAF_REQUIRE(all_acked(propose_n("still-", 3)));
  check_invariants();
}

CAF_TEST(oversized records are refused with a typed error) {
  auto leader = elect();
  replicator_actor h = cluster->node(leader).handle;
  caf::error refused;
  auto req = self->request(h, caf::infinite, propose_atom::value,
                           std::vector<std::uint8_t>((std::size_t{1} << 20) + 1, 'x'));
  sched.run();
  req.receive([&](std::uint64_t) { CAF_FAIL("an oversized record was accepted"); },
              [&](caf::error& err) { refused = std::move(err); });
  CAF_CHECK_EQUAL(refused.code(), static_cast<std::uint8_t>(replicator_errc::record_too_large));
}

CAF_TEST_FIXTURE_SCOPE_END()
