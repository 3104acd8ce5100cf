// Forced promotion (actors/replicator_recovery.hpp): a three-site cluster loses two sites for
// good; the operator forces the survivor's journal to a configuration of itself alone, and it
// leads again with every committed record. Then the refusals: a pristine store, a locked one
// (its node still runs), a configuration without the survivor, one that adds servers, and
// malformed voter lists, each leaving the store as it was.

#define CAF_SUITE replicator_recovery

#include "actors/replicator_recovery.hpp"
#include "actors/replicator.hpp"
#include "actors/replicator_errors.hpp"
#include "actors/replicator_rejoin.hpp"
#include "runtime/journal/file_store.hpp"
#include "tests/actors/replicator_fixture.hpp"

#include <caf/test/dsl.hpp>
#include <caf/test/unit_test_impl.hpp>

extern "C" {
#include <raft.h>
}

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

using namespace bastion;
using namespace bastion::actors;
using sim::bytes;
using sim::proposal_record;

namespace {

using voters = std::vector<std::pair<std::uint64_t, std::string>>;

// force_configuration waits for the store to make its entry durable; a memory_store does
// that only when flushed, so the call runs on its own thread while this one flushes.
caf::expected<forced_configuration_report> force_on_memory_store(journal::memory_store& store,
                                                                 std::uint64_t self_id,
                                                                 voters keep) {
  auto result = std::async(std::launch::async, [&store, self_id, keep] {
    return force_configuration(store, self_id, "replica-" + std::to_string(self_id), keep,
                               std::chrono::seconds{10});
  });
  while (result.wait_for(std::chrono::milliseconds{1}) != std::future_status::ready) store.flush();
  return result.get();
}

std::string refusal_of(const caf::expected<forced_configuration_report>& r) {
  CAF_REQUIRE(!r);
  CAF_CHECK_EQUAL(r.error().code(), static_cast<std::uint8_t>(replicator_errc::recovery_refused));
  auto why = replicator_error_detail(r.error());
  CAF_MESSAGE(why);
  return why;
}

bool mentions(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/bastion-recovery-XXXXXX";
    CAF_REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
};

// A file_store whose recovery notices stay out of the test output.
std::unique_ptr<journal::file_store> open_store(const std::string& dir) {
  return std::make_unique<journal::file_store>(dir, journal::file_store_options{},
                                               std::make_shared<journal::posix_file_ops>(),
                                               [](const std::string&) {});
}

std::string configuration_entry(const voters& vs) {
  raft_configuration conf;
  raft_configuration_init(&conf);
  for (const auto& [id, address] : vs)
    raft_configuration_add(&conf, id, address.c_str(), RAFT_VOTER);
  raft_buffer buf{};
  CAF_REQUIRE_EQUAL(raft_configuration_encode(&conf, &buf), 0);
  std::string out(static_cast<const char*>(buf.base), buf.len);
  raft_free(buf.base);
  raft_configuration_close(&conf);
  return out;
}

// Writes a journal like a three-replica cluster's (configuration at 1, then commands of
// term 1..3) into `dir`, with term 3 and a vote for 2 as the hard state.
void write_three_replica_journal(const std::string& dir, int commands) {
  auto store = open_store(dir);
  CAF_REQUIRE(store->load());
  CAF_REQUIRE(!store->save_hard_state({3, 2}));
  std::vector<journal::log_entry> entries;
  auto conf = configuration_entry({{1, "replica-1"}, {2, "replica-2"}, {3, "replica-3"}});
  entries.push_back({1, RAFT_CHANGE, {conf.begin(), conf.end()}});
  for (int i = 0; i < commands; ++i)
    entries.push_back({static_cast<std::uint64_t>(1 + i * 3 / commands), RAFT_COMMAND,
                       bytes("cmd-" + std::to_string(i))});
  std::promise<caf::error> done;
  store->append(1, std::move(entries), [&](caf::error err) { done.set_value(std::move(err)); });
  CAF_REQUIRE(!done.get_future().get());
  store->stop();
}

}  // namespace

CAF_TEST_FIXTURE_SCOPE(replicator_recovery_tests, sim::fixture)

CAF_TEST(a survivor forced to a configuration of itself leads with every committed record) {
  constexpr std::uint64_t survivor = 3;  // dr-remote: both city sites are lost
  elect();
  CAF_REQUIRE(all_acked(propose_n("before-", 8)));
  cluster->advance(1000);  // every replica applies them
  const auto committed = state_of(cluster->leader());
  CAF_REQUIRE_EQUAL(committed.size(), 8u);
  CAF_REQUIRE_EQUAL(state_of(survivor), committed);
  const auto last = status_of(survivor);
  // Everything stops (flushed first: this test is about recovery, not lost writes).
  for (auto id : cluster->ids()) {
    cluster->node(id).store->flush();
    cluster->crash(id);
  }

  auto report =
      force_on_memory_store(*cluster->node(survivor).store, survivor, {{survivor, "replica-3"}});
  if (!report) CAF_FAIL(sys.render(report.error()));
  CAF_MESSAGE("report:\n" << report->describe());
  CAF_CHECK_EQUAL(report->last_index, last.last_index);
  CAF_CHECK_EQUAL(report->term, last.term);
  CAF_CHECK_EQUAL(report->replaced_configuration_index, 1u);
  CAF_REQUIRE_EQUAL(report->replaced_configuration.size(), 3u);
  CAF_CHECK_EQUAL(report->replaced_configuration[0].role, "voter");
  CAF_REQUIRE_EQUAL(report->configuration.size(), 1u);
  CAF_CHECK_EQUAL(report->configuration[0].id, survivor);
  CAF_CHECK_EQUAL(report->configuration_index, last.last_index + 1);
  CAF_CHECK_EQUAL(report->configuration_term, last.term + 1);  // a term nobody has led
  CAF_CHECK(mentions(report->describe(), "loss window"));
  // Durable: the store now ends with the forced configuration, and the term moved with it.
  const auto durable = cluster->node(survivor).store->durable();
  CAF_REQUIRE(!durable.entries.empty());
  CAF_CHECK_EQUAL(durable.entries.back().type, RAFT_CHANGE);
  CAF_CHECK_EQUAL(durable.entries.back().term, last.term + 1);
  CAF_CHECK_EQUAL(durable.hard.term, last.term + 1);
  CAF_CHECK_EQUAL(durable.hard.voted_for, survivor);

  // Alone, it leads at once (no peer is up to vote), in the forced term.
  cluster->restart(survivor);
  CAF_REQUIRE(cluster->advance_until([&] { return cluster->leader() == survivor; }, 3000));
  CAF_CHECK_EQUAL(status_of(survivor).term, last.term + 1);
  // New proposals commit, and the records committed before are all there, in order.
  auto slots = propose_n("after-", 3);
  CAF_CHECK(all_acked(slots));
  cluster->advance(200);
  auto now = state_of(survivor);
  CAF_REQUIRE_EQUAL(now.size(), committed.size() + 3);
  for (std::size_t i = 0; i < committed.size(); ++i) CAF_CHECK_EQUAL(now[i], committed[i]);
  CAF_CHECK_EQUAL(now.back(), "after-2");
  // No index was applied twice with different records, across every incarnation.
  for (const auto& v : cluster->check_invariants()) CAF_ERROR(v);
}

CAF_TEST(records the survivor held without proof of commit become committed) {
  // The loss window's other side: a record dr-remote received but the old cluster never
  // acknowledged is kept (and committed) by the forced configuration.
  constexpr std::uint64_t survivor = 3;
  auto leader = elect();
  if (leader == survivor) {
    cluster->transfer(leader, 1);
    CAF_REQUIRE(cluster->advance_until([&] { return cluster->leader() == 1; }, 10000));
    leader = 1;
  }
  CAF_REQUIRE(all_acked(propose_n("acked-", 3)));
  cluster->advance(500);
  // Only the survivor hears the leader now, and never answers: nothing new can commit.
  const auto other = leader == 1 ? std::uint64_t{2} : std::uint64_t{1};
  cluster->net().cut_both(leader, other);
  cluster->net().cut(survivor, leader);
  auto unacked = cluster->propose(leader, bytes("unacknowledged"));
  cluster->advance(300);
  CAF_REQUIRE(cluster->proposal(unacked).outcome == proposal_record::pending);
  for (auto id : cluster->ids()) {
    cluster->node(id).store->flush();
    cluster->crash(id);
  }
  auto report =
      force_on_memory_store(*cluster->node(survivor).store, survivor, {{survivor, "replica-3"}});
  if (!report) CAF_FAIL(sys.render(report.error()));
  cluster->net().heal();
  cluster->restart(survivor);
  CAF_REQUIRE(cluster->advance_until([&] { return cluster->leader() == survivor; }, 3000));
  CAF_CHECK(all_acked(propose_n("after-", 1)));
  cluster->advance(200);
  const auto now = state_of(survivor);
  CAF_REQUIRE_EQUAL(now.size(), 5u);
  CAF_CHECK_EQUAL(now[3], "unacknowledged");
}

// The way back after a forced promotion (issue 7: "failback of prod and switchover back"): the
// fenced sites return with empty journals and bootstrap off, cannot campaign or vote until the
// survivor adds them, catch up, become voters, and one of them can lead again.
CAF_TEST(fenced sites rejoin with empty journals as voters and can lead again) {
  constexpr std::uint64_t survivor = 3;
  elect();
  CAF_REQUIRE(all_acked(propose_n("before-", 6)));
  cluster->advance(1000);
  for (auto id : cluster->ids()) {
    cluster->node(id).store->flush();
    cluster->crash(id);
  }
  auto report =
      force_on_memory_store(*cluster->node(survivor).store, survivor, {{survivor, "replica-3"}});
  if (!report) CAF_FAIL(sys.render(report.error()));
  cluster->restart(survivor);
  CAF_REQUIRE(cluster->advance_until([&] { return cluster->leader() == survivor; }, 3000));
  CAF_REQUIRE(all_acked(propose_n("alone-", 3)));
  const auto term = status_of(survivor).term;

  // Both fenced sites come back empty before anyone adds them: they hold no configuration,
  // so neither campaigns (together they were a majority of the old one) nor disturbs the
  // survivor, and a proposal to one is refused naming the leader.
  const auto rejoined_at = cluster->now_ms();
  cluster->rejoin_empty(1);
  cluster->rejoin_empty(2);
  cluster->advance(5000);
  for (const auto& e : cluster->role_log())
    if (e.at_ms >= rejoined_at && e.id != survivor)
      CAF_CHECK_NOT_EQUAL(e.role, replica_role::candidate);
  CAF_CHECK_EQUAL(cluster->leader(), survivor);
  CAF_CHECK_EQUAL(status_of(survivor).term, term);
  CAF_CHECK(status_of(survivor).peer_ids.empty());  // still a one-voter configuration
  auto refused = cluster->propose(1, bytes("to-a-spare"));
  cluster->advance(100);
  CAF_CHECK(cluster->proposal(refused).outcome == proposal_record::failed);

  // Refusals: a follower cannot add, an unknown server cannot be added.
  cluster->add_voter(1, 2);
  cluster->add_voter(survivor, 9);
  CAF_REQUIRE(
      cluster->advance_until([&] { return cluster->membership_results().size() == 2; }, 2000));
  CAF_MESSAGE("refusals: " << cluster->membership_results()[0] << " | "
                           << cluster->membership_results()[1]);
  CAF_CHECK(mentions(cluster->membership_results()[0], "not_leader"));
  CAF_CHECK(mentions(cluster->membership_results()[1], "membership_failed"));
  CAF_CHECK(mentions(cluster->membership_results()[1], "not one of this replica's configured"));

  // prod, then dr-local, added one at a time (libraft allows one change at a time).
  cluster->add_voter(survivor, 1);
  CAF_REQUIRE(
      cluster->advance_until([&] { return cluster->membership_results().size() == 3; }, 10000));
  CAF_CHECK_EQUAL(cluster->membership_results()[2], "voters 2");
  cluster->add_voter(survivor, 2);
  CAF_REQUIRE(
      cluster->advance_until([&] { return cluster->membership_results().size() == 4; }, 10000));
  CAF_CHECK_EQUAL(cluster->membership_results()[3], "voters 3");
  // Asking again changes nothing and answers at once.
  cluster->add_voter(survivor, 1);
  CAF_REQUIRE(
      cluster->advance_until([&] { return cluster->membership_results().size() == 5; }, 1000));
  CAF_CHECK_EQUAL(cluster->membership_results()[4], "voters 3");
  CAF_CHECK_EQUAL(status_of(survivor).peer_ids.size(), 2u);

  // Failback: prod leads again and all three agree on every record, old and new.
  cluster->transfer(survivor, 1);
  CAF_REQUIRE(cluster->advance_until([&] { return cluster->leader() == 1; }, 10000));
  CAF_CHECK(all_acked(propose_n("back-", 3)));
  cluster->advance(500);
  const auto expected = state_of(1);
  CAF_REQUIRE_EQUAL(expected.size(), 6u + 3u + 3u);
  CAF_CHECK_EQUAL(state_of(2), expected);
  CAF_CHECK_EQUAL(state_of(survivor), expected);
  for (const auto& v : cluster->check_invariants()) CAF_ERROR(v);
}

CAF_TEST(a pristine store is refused) {
  journal::memory_store store;
  auto why = refusal_of(force_configuration(store, 1, "replica-1", {{1, "replica-1"}}));
  CAF_CHECK(mentions(why, "pristine"));
  CAF_CHECK(store.durable().entries.empty());
  CAF_CHECK_EQUAL(store.durable().hard.term, 0u);
}

CAF_TEST(bad voter lists are refused before the store is touched) {
  temp_dir dir;
  write_three_replica_journal(dir.path, 4);
  struct bad_case {
    voters keep;
    std::string expect;
  };
  const std::vector<bad_case> cases = {
      {{}, "names no voter"},
      {{{2, "replica-2"}}, "not in the new configuration"},
      {{{1, "replica-1"}, {1, "replica-1"}}, "listed twice"},
      {{{1, "replica-1"}, {0, "replica-0"}}, "id 0"},
      {{{1, "replica-1"}, {2, ""}}, "empty address"},
      {{{1, "elsewhere"}}, "its address is replica-1"},
  };
  for (const auto& c : cases) {
    auto store = open_store(dir.path);
    auto why = refusal_of(force_configuration(*store, 1, "replica-1", c.keep));
    if (!mentions(why, c.expect)) CAF_ERROR(why << " should mention " << c.expect);
  }
  // A voter the replaced configuration does not have: forced promotion only reduces. (This
  // one needs the stored configuration, so the store is loaded, but nothing is written.)
  {
    auto store = open_store(dir.path);
    auto why = refusal_of(
        force_configuration(*store, 1, "replica-1", {{1, "replica-1"}, {7, "replica-7"}}));
    CAF_CHECK(mentions(why, "voter 7 is not a server of the configuration being replaced"));
    CAF_CHECK(mentions(why, "2@replica-2 (voter)"));
  }
  auto store = open_store(dir.path);
  auto rec = store->load();
  CAF_REQUIRE(rec);
  CAF_CHECK_EQUAL(rec->entries.size(), 5u);  // untouched
  CAF_CHECK_EQUAL(rec->hard.term, 3u);
}

CAF_TEST(a store locked by a running node is refused naming its process) {
  temp_dir dir;
  write_three_replica_journal(dir.path, 2);
  auto running = open_store(dir.path);  // the node that still runs holds the lock
  CAF_REQUIRE(running->load());
  auto store = open_store(dir.path);
  auto why = refusal_of(force_configuration(*store, 1, "replica-1", {{1, "replica-1"}}));
  CAF_CHECK(mentions(why, "in use by process " + std::to_string(::getpid())));
  CAF_CHECK(mentions(why, "stop the node"));
  running->stop();
  // Once it stopped, the same call goes through.
  auto again = open_store(dir.path);
  auto report = force_configuration(*again, 1, "replica-1", {{1, "replica-1"}});
  if (!report) CAF_ERROR(sys.render(report.error()));
}

CAF_TEST(a forced file journal restarts as a one - voter cluster that leads) {
  temp_dir dir;
  write_three_replica_journal(dir.path, 6);
  {
    auto store = open_store(dir.path);
    auto report = force_configuration(*store, 2, "replica-2", {{2, "replica-2"}});
    if (!report) CAF_FAIL(sys.render(report.error()));
    CAF_CHECK_EQUAL(report->last_index, 7u);
    CAF_CHECK_EQUAL(report->last_term, 3u);
    CAF_CHECK_EQUAL(report->term, 3u);
    CAF_CHECK_EQUAL(report->voted_for, 2u);
    CAF_CHECK_EQUAL(report->known_committed_index, 0u);  // no snapshot: nothing proven
    CAF_CHECK_EQUAL(report->configuration_index, 8u);
    CAF_CHECK_EQUAL(report->configuration_term, 4u);
    store->stop();
  }
  {
    // What a restarted node reads back.
    auto store = open_store(dir.path);
    auto rec = store->load();
    CAF_REQUIRE(rec);
    CAF_REQUIRE_EQUAL(rec->entries.size(), 8u);
    CAF_CHECK_EQUAL(rec->entries.back().type, RAFT_CHANGE);
    CAF_CHECK_EQUAL(rec->entries.back().term, 4u);
    CAF_CHECK_EQUAL(rec->hard.term, 4u);
    CAF_CHECK_EQUAL(rec->hard.voted_for, 2u);
    // Log terms never decrease.
    for (std::size_t i = 1; i < rec->entries.size(); ++i)
      CAF_CHECK_LESS_OR_EQUAL(rec->entries[i - 1].term, rec->entries[i].term);
    store->stop();
  }
  // The replica started on it leads at once, alone: libraft's start makes a lone voter
  // leader without waiting for an election.
  auto store = open_store(dir.path);
  replicator_config alone;
  alone.id = 2;
  alone.address = "replica-2";
  alone.peers = {{1, "replica-1", {}}, {3, "replica-3", {}}};  // still configured, never asked
  auto h = spawn_replicator(sys, alone, *store, sim::clock_for_tests);
  sched.run();
  auto s = [&] {
    replicator_status out;
    auto req = self->request(h, caf::infinite, status_atom::value);
    sched.run();
    req.receive([&](replicator_status& st) { out = std::move(st); },
                [&](caf::error& err) { CAF_FAIL(sys.render(err)); });
    return out;
  }();
  CAF_CHECK(s.role == replica_role::leader);
  CAF_CHECK_EQUAL(s.term, 4u);
  CAF_CHECK_EQUAL(s.leader_id, 2u);
  CAF_CHECK_EQUAL(s.last_index, 8u);
  caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST(rejoin moves the old journal aside and leaves an empty one that will not bootstrap) {
  temp_dir root;
  const std::string dir = root.path + "/prod.journal";
  write_three_replica_journal(dir, 3);
  {  // A running node holds the lock: refused, nothing moved.
    auto running = open_store(dir);
    CAF_REQUIRE(running->load());
    auto locked = prepare_rejoin(dir, "t1");
    CAF_REQUIRE(!locked);
    const auto why = replicator_error_detail(locked.error());
    CAF_MESSAGE(why);
    CAF_CHECK(mentions(why, "in use by process " + std::to_string(::getpid())));
    CAF_CHECK(mentions(why, "stop the site's node first"));
    CAF_CHECK(!joins_existing_cluster(dir));
    CAF_CHECK(!std::filesystem::exists(dir + ".fenced-t1"));
    running->stop();
  }
  std::filesystem::create_directories(dir + ".fenced-taken");
  auto taken = prepare_rejoin(dir, "taken");
  CAF_REQUIRE(!taken);
  CAF_CHECK(mentions(replicator_error_detail(taken.error()), "exists already"));
  CAF_CHECK(!joins_existing_cluster(dir));

  auto report = prepare_rejoin(dir, "t2");
  if (!report) CAF_FAIL(sys.render(report.error()));
  CAF_CHECK_EQUAL(report->moved_to, dir + ".fenced-t2");
  CAF_CHECK(joins_existing_cluster(dir));
  // The old journal is intact where it went (the loss window's evidence)...
  auto old = open_store(report->moved_to);
  auto old_log = old->load();
  CAF_REQUIRE(old_log);
  CAF_CHECK_EQUAL(old_log->entries.size(), 4u);
  old->stop();
  // ...and the new one is empty: a store there loads as pristine.
  auto fresh = open_store(dir);
  auto fresh_log = fresh->load();
  CAF_REQUIRE(fresh_log);
  CAF_CHECK(fresh_log->entries.empty());
  CAF_CHECK_EQUAL(fresh_log->hard.term, 0u);
  fresh->stop();
  // Asked again: nothing to move, nothing changes.
  auto again = prepare_rejoin(dir, "t3");
  if (!again) CAF_FAIL(sys.render(again.error()));
  CAF_CHECK(again->moved_to.empty());
  CAF_CHECK(!std::filesystem::exists(dir + ".fenced-t3"));
  // A site that never had a journal gets one with the marker.
  auto none = prepare_rejoin(root.path + "/new.journal", "t4");
  if (!none) CAF_FAIL(sys.render(none.error()));
  CAF_CHECK(none->moved_to.empty());
  CAF_CHECK(joins_existing_cluster(root.path + "/new.journal"));
}

CAF_TEST_FIXTURE_SCOPE_END()
