// The replicator on CAF's deterministic test coordinator: three replicas, an in-memory
// network between them and a memory_store under each. Each scenario drives libraft through
// our raft_io and ends with the cluster invariants (tests/actors/replicator_sim.hpp).

#define CAF_SUITE replicator

#include "actors/replicator.hpp"
#include "actors/replicator_codec.hpp"
#include "actors/replicator_errors.hpp"
#include "runtime/journal/file_store.hpp"
#include "runtime/metrics/registry.hpp"
#include "runtime/wire/announce.hpp"
#include "tests/actors/replicator_fixture.hpp"
#include "tests/actors/replicator_sim.hpp"

#include <caf/test/dsl.hpp>
#include <caf/test/unit_test_impl.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>

using namespace bastion;
using namespace bastion::actors;
using sim::proposal_record;

using sim::bytes;
using sim::clock_for_tests;
using sim::fixture;

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
  // A frame over the receiver's frame_limits (8 MiB) is refused before it is read.
  wire::frame huge = raft_codec::encode(forged, leader, "replica-" + std::to_string(leader));
  huge.payload.resize((std::size_t{8} << 20) + 8, 0);
  self->send(h, huge);
  sched.run();
  auto after = status_of(victim);
  CAF_CHECK_EQUAL(after.frames_dropped - before.frames_dropped, 6u);
  CAF_CHECK_EQUAL(after.frames_dropped_oversize - before.frames_dropped_oversize, 1u);
  CAF_CHECK(after.last_error.find("frame_too_large") != std::string::npos);
  CAF_CHECK(after.last_error.find("8388608") != std::string::npos);
  CAF_CHECK_EQUAL(after.frames_dropped_misaddressed - before.frames_dropped_misaddressed, 1u);
  CAF_CHECK_EQUAL(after.frames_dropped_unsealed - before.frames_dropped_unsealed, 1u);
  CAF_CHECK_EQUAL(after.frames_dropped_malformed - before.frames_dropped_malformed, 3u);
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

CAF_TEST(a partitioned follower catches up through a snapshot after the leader compacts) {
  rebuild(compacting(8, 2));
  auto leader = elect();
  CAF_REQUIRE(all_acked(propose_n("early-", 3)));
  const std::uint64_t lagging = leader == 3 ? 1 : leader + 1;
  cluster->net().isolate(lagging, cluster->ids());
  // Far more than threshold + trailing: the entries the lagging replica lacks leave the
  // leader's log, so only a snapshot can bring it back.
  // In rounds: libraft considers a snapshot only when it applies entries and no snapshot
  // write is pending, so one burst would compact once.
  for (int round = 0; round < 5; ++round) {
    CAF_REQUIRE(all_acked(propose_n("while-cut-" + std::to_string(round) + "-", 8, 20000)));
    cluster->advance(200);  // the snapshot's write completes
  }
  auto leader_status = status_of(leader);
  CAF_CHECK_GREATER(leader_status.snapshots_taken, 0u);
  CAF_CHECK_GREATER(leader_status.snapshot_index, 10u);
  CAF_CHECK_GREATER(cluster->node(leader).store->durable().start_index, 4u);  // compacted
  check_invariants();  // heals, commits a final record, waits for every replica
  auto follower = status_of(lagging);
  CAF_CHECK_GREATER_OR_EQUAL(follower.snapshots_installed, 1u);
  CAF_CHECK_EQUAL(follower.storage_errors, 0u);
  // Its subscriber never saw what the snapshot covered; its state machine holds all of it.
  const auto& seen = cluster->node(lagging).applied.back();
  CAF_CHECK_LESS(seen.size(), 10u);
  if (!seen.empty()) CAF_CHECK_GREATER(seen.front().index, 10u);
  CAF_CHECK(state_of(lagging) == state_of(leader));
  CAF_CHECK_EQUAL(state_of(lagging).size(), 3u + 40u + 1u);
  CAF_CHECK_EQUAL(cluster->node(lagging).states.back()->restores, 1u);
}

CAF_TEST(a replica restarts from a stored snapshot and the log after it) {
  rebuild(compacting(8, 2));
  auto leader = elect();
  CAF_REQUIRE(all_acked(propose_n("r-", 30)));
  cluster->advance(500);
  const std::uint64_t victim = leader == 3 ? 1 : leader + 1;
  auto before = status_of(victim);
  CAF_REQUIRE_GREATER(before.snapshot_index, 0u);
  CAF_REQUIRE(cluster->node(victim).store->durable().snap.has_value());
  cluster->crash(victim);
  cluster->restart(victim);
  cluster->advance(500);
  // The new incarnation restored the snapshot at start (not an install) and applied only the
  // entries after it, yet its state holds every record.
  auto after = status_of(victim);
  CAF_CHECK_EQUAL(after.snapshots_installed, 0u);
  CAF_CHECK_GREATER_OR_EQUAL(after.snapshot_index, before.snapshot_index);
  CAF_CHECK_EQUAL(cluster->node(victim).states.back()->restores, 1u);
  CAF_CHECK_EQUAL(state_of(victim).size(), 30u);
  CAF_CHECK(state_of(victim) == state_of(leader));
  check_invariants();
}

CAF_TEST(a record larger than a frame allows is refused and large catch - ups are split) {
  sim::cluster_options opt;
  opt.append_frame_bytes_max = 4096;
  rebuild(opt);
  auto leader = elect();
  const std::uint64_t lagging = leader == 3 ? 1 : leader + 1;
  cluster->net().isolate(lagging, cluster->ids());
  // 30 records of 1 KiB: the catch-up needs several frames of at most 4 KiB.
  std::vector<std::size_t> slots;
  for (int i = 0; i < 30; ++i) {
    auto payload = bytes("big-" + std::to_string(i));
    payload.resize(1024, 'x');
    slots.push_back(cluster->propose_to_leader(payload));
  }
  cluster->advance_until(
      [&] {
        for (auto sl : slots)
          if (cluster->proposal(sl).outcome == proposal_record::pending) return false;
        return true;
      },
      10000);
  CAF_REQUIRE(all_acked(slots));
  check_invariants();
  CAF_CHECK_GREATER(status_of(leader).append_frames_split, 0u);
  CAF_CHECK(state_of(lagging) == state_of(leader));
  // One byte over the record bound (here the frame bound) is refused, naming both sizes.
  caf::error refused;
  auto req = self->request(cluster->node(cluster->leader()).handle, caf::infinite,
                           propose_atom::value, std::vector<std::uint8_t>(4097, 'y'));
  sched.run();
  req.receive([&](std::uint64_t) { CAF_FAIL("an oversized record was accepted"); },
              [&](caf::error& err) { refused = std::move(err); });
  CAF_CHECK_EQUAL(refused.code(), static_cast<std::uint8_t>(replicator_errc::record_too_large));
  CAF_CHECK(sys.render(refused).find("4097 bytes exceeds record_bytes_max 4096") !=
            std::string::npos);
  // record_bytes_max must fit in append_frame_bytes_max: a replicator configured otherwise
  // refuses to start, naming both.
  journal::memory_store store;
  replicator_config bad;
  bad.id = 9;
  bad.address = "replica-9";
  bad.append_frame_bytes_max = 1024;
  auto h = spawn_replicator(sys, bad, store, clock_for_tests);
  self->monitor(h);
  sched.run();
  caf::error reason;
  self->receive([&](caf::down_msg& d) { reason = d.reason; });
  CAF_CHECK(sys.render(reason).find("append_frame_bytes_max 1024") != std::string::npos);
}

CAF_TEST(replicator series appear in the Prometheus text) {
  metrics::registry reg;
  sim::cluster_options opt = compacting(4, 2);
  opt.metrics = &reg;
  rebuild(opt);
  auto leader = elect();
  CAF_REQUIRE(all_acked(propose_n("m-", 10)));
  cluster->advance(500);
  const auto text = reg.render_prometheus();
  const std::string l = "{replica=\"" + std::to_string(leader) + "\"}";
  CAF_CHECK(text.find("bastion_replicator_role" + l + " 3") != std::string::npos);
  CAF_CHECK(text.find("bastion_replicator_term" + l + " " +
                      std::to_string(status_of(leader).term)) != std::string::npos);
  CAF_CHECK(text.find("bastion_replicator_proposals_committed_total" + l + " 10") !=
            std::string::npos);
  CAF_CHECK(text.find("bastion_replicator_commit_index" + l) != std::string::npos);
  CAF_CHECK(text.find("bastion_replicator_last_applied" + l) != std::string::npos);
  CAF_CHECK(text.find("bastion_replicator_snapshots_taken_total" + l + " 0") ==
            std::string::npos);  // it compacted at least once
  CAF_CHECK(text.find("bastion_replicator_snapshots_taken_total" + l) != std::string::npos);
  CAF_CHECK(text.find("bastion_replicator_snapshots_installed_total") != std::string::npos);
  CAF_CHECK(text.find("bastion_replicator_frames_received_total") != std::string::npos);
  CAF_CHECK(text.find("# TYPE bastion_replicator_role gauge") != std::string::npos);
  // A dropped frame shows up under its reason.
  wire::frame garbage;
  garbage.kind = static_cast<std::uint16_t>(wire::frame_kind::raft_message);
  garbage.payload.assign(64, 0xab);
  self->send(cluster->node(leader).handle, garbage);
  sched.run();
  CAF_CHECK(reg.render_prometheus().find("bastion_replicator_frames_dropped_total{replica=\"" +
                                         std::to_string(leader) + "\",reason=\"malformed\"} 1") !=
            std::string::npos);
}

CAF_TEST(a corrupt snapshot file stops the replica from starting and names the file) {
  char tmpl[] = "/tmp/bastion-replicator-XXXXXX";
  CAF_REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string dir = std::string{tmpl} + "/journal";
  const std::string path = dir + "/snapshot";
  {
    journal::file_store store{dir, {}, std::make_shared<journal::posix_file_ops>()};
    CAF_REQUIRE(store.load());
    journal::snapshot snap;
    snap.index = 5;
    snap.term = 1;
    snap.data = journal_summary{}.serialize();
    std::promise<caf::error> done;
    store.put_snapshot(snap, 0, [&](caf::error err) { done.set_value(std::move(err)); });
    CAF_REQUIRE(!done.get_future().get());
  }
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-1, std::ios::end);
    f.put('\x5a');  // the body's last byte: its checksum no longer matches
  }
  journal::file_store store{
      dir, {}, std::make_shared<journal::posix_file_ops>(), [](const std::string&) {}};
  replicator_config one;
  one.id = 1;
  one.address = "replica-1";
  auto h = spawn_replicator(sys, one, store, clock_for_tests);
  self->monitor(h);
  sched.run();
  caf::error reason;
  self->receive([&](caf::down_msg& d) { reason = d.reason; });
  CAF_CHECK_EQUAL(reason.code(), static_cast<std::uint8_t>(replicator_errc::storage_failed));
  const auto text = sys.render(reason);
  CAF_MESSAGE(text);
  CAF_CHECK(text.find(path) != std::string::npos);
  CAF_CHECK(text.find("checksum") != std::string::npos);
  std::filesystem::remove_all(tmpl);
}

CAF_TEST_FIXTURE_SCOPE_END()
