// The release rule (actors/coordination/release_gate): first the invariants on thousands of
// seeded random schedules against a model of what the client has seen, then the rules one by
// one.
//
// Invariants, checked after every step of every schedule:
//   I1 no token of a request leaves before its admission record is committed;
//   I2 tokens leave in the order they were produced, none twice, none lost while streaming;
//   I3 no final answer leaves before its completion record is committed, and at most one;
//   I4 every begun request ends exactly once: released, replayed or one failure;
//   I5 after leadership is lost nothing more leaves for the requests of that epoch;
//   I6 a request id whose completion committed is answered with that outcome, never re-run.

#include "actors/coordination/release_gate.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace bastion::coordination;

namespace {

struct client_view {
  bool admission_committed = false;
  bool completion_proposed = false;
  bool completion_committed = false;
  std::uint32_t produced = 0;           // tokens the worker made
  std::vector<std::uint32_t> released;  // token ids that left, in order
  int endings = 0;                      // final answers + failures
  std::string final_outcome;
  std::uint64_t epoch = 0;
};

struct schedule_checker {
  release_gate gate{release_gate_limits{64, 8, 32}};
  std::map<std::string, client_view> seen;
  std::map<std::string, std::string> committed_outcomes;  // the journal's completions
  std::uint64_t epoch = 0;
  std::mt19937_64 rng;

  explicit schedule_checker(std::uint64_t seed) : rng(seed) {}

  std::string pick_live() {
    std::vector<std::string> live;
    for (const auto& [id, v] : seen)
      if (v.endings == 0 && v.epoch == epoch) live.push_back(id);
    if (live.empty()) return {};
    return live[rng() % live.size()];
  }

  void release(const std::string& id, const std::vector<held_token>& out) {
    auto& v = seen[id];
    for (const auto& t : out) {
      REQUIRE(v.admission_committed);      // I1
      REQUIRE(v.endings == 0);             // I5
      REQUIRE(v.epoch == epoch);           // I5
      REQUIRE(t.id == v.released.size());  // I2: next in order
      v.released.push_back(t.id);
    }
  }

  void end_with_failures(const std::vector<gate_failure>& failures) {
    for (const auto& f : failures) {
      auto& v = seen.at(f.request_id);
      REQUIRE(v.endings == 0);  // I4
      ++v.endings;
      if (f.code == failure_code::not_primary) REQUIRE_FALSE(v.admission_committed);
    }
  }

  void step() {
    switch (rng() % 9) {
      case 0: {  // a new request, or a retry of an old id
        std::string id;
        if (!seen.empty() && rng() % 3 == 0) {
          auto it = seen.begin();
          std::advance(it, static_cast<long>(rng() % seen.size()));
          id = it->first;
        } else {
          id = "r" + std::to_string(seen.size());
        }
        const auto r = gate.begin(id);
        if (auto c = committed_outcomes.find(id); c != committed_outcomes.end()) {
          REQUIRE(r.code == begin_code::replay);  // I6
          REQUIRE(r.outcome == c->second);
          break;
        }
        if (r.code != begin_code::started) {
          if (r.code == begin_code::duplicate_in_flight) REQUIRE(seen.at(id).endings == 0);
          break;
        }
        REQUIRE(gate.is_open());
        seen[id] = client_view{};
        seen[id].epoch = epoch;
        break;
      }
      case 1:
      case 2: {  // a token
        auto id = pick_live();
        if (id.empty()) break;
        auto& v = seen[id];
        if (v.completion_proposed) break;
        release(id, gate.on_token(id, {"t", v.produced++}));
        end_with_failures(gate.take_failures());
        if (v.endings == 0 && v.admission_committed) REQUIRE(v.released.size() == v.produced);
        break;
      }
      case 3: {  // admission commits
        auto id = pick_live();
        if (id.empty() || seen[id].admission_committed) break;
        seen[id].admission_committed = true;
        release(id, gate.admission_committed(id));
        REQUIRE(seen[id].released.size() == seen[id].produced);  // I2: none lost
        break;
      }
      case 4: {  // the worker finishes
        auto id = pick_live();
        if (id.empty() || seen[id].completion_proposed) break;
        REQUIRE(gate.finish(id));
        seen[id].completion_proposed = true;
        break;
      }
      case 5: {  // completion commits (only after admission: Raft keeps their order)
        auto id = pick_live();
        if (id.empty()) break;
        auto& v = seen[id];
        if (!v.completion_proposed || v.completion_committed) break;
        if (!v.admission_committed) {
          v.admission_committed = true;
          release(id, gate.admission_committed(id));
        }
        v.completion_committed = true;
        committed_outcomes[id] = "answer of " + id;
        REQUIRE(gate.completion_committed(id, "answer of " + id));  // I3: released exactly now
        REQUIRE(v.endings == 0);
        ++v.endings;
        break;
      }
      case 6: {  // the scheduler refuses or the client cancels before admission commits
        auto id = pick_live();
        if (id.empty()) break;
        auto& v = seen[id];
        const bool gone = gate.abandon(id);
        REQUIRE(gone == !(v.admission_committed || v.completion_proposed));
        if (gone) ++v.endings;
        break;
      }
      case 7: {  // leadership lost, later regained in a new epoch
        if (rng() % 4 != 0) break;
        end_with_failures(gate.lose_leadership());
        for (auto& [id, v] : seen)
          if (v.epoch == epoch) REQUIRE(v.endings == 1);  // I4 at the epoch's end
        REQUIRE(gate.in_flight() == 0);
        // A completion that committed in the old epoch is applied at the new leader too.
        ++epoch;
        gate.open(epoch);
        break;
      }
      default: {  // the same late token again after the end: never released
        for (auto& [id, v] : seen)
          if (v.endings != 0) {
            REQUIRE(gate.on_token(id, {"late", 999}).empty());  // I5
            break;
          }
      }
    }
  }
};

}  // namespace

TEST_CASE("release rule invariants hold on seeded random schedules") {
  const int schedules =
      (std::getenv("BASTION_LONG") && std::string{std::getenv("BASTION_LONG")} == "1") ? 20000
                                                                                       : 2000;
  std::size_t endings = 0, replays_possible = 0;
  for (int seed = 1; seed <= schedules; ++seed) {
    schedule_checker c(static_cast<std::uint64_t>(seed));
    c.epoch = 1;
    c.gate.open(1);
    for (int i = 0; i < 200; ++i) c.step();
    c.end_with_failures(c.gate.lose_leadership());
    for (const auto& [id, v] : c.seen) {
      REQUIRE(v.endings == 1);  // I4
      ++endings;
    }
    replays_possible += c.committed_outcomes.size();
  }
  INFO("schedules " << schedules);
  CHECK(endings > static_cast<std::size_t>(schedules) * 5);  // the schedules did real work
  CHECK(replays_possible > static_cast<std::size_t>(schedules));
  std::printf("release_gate: %d schedules, %zu requests ended, %zu completions committed\n",
              schedules, endings, replays_possible);
}

TEST_CASE("tokens are held until the admission commits, then flushed in order") {
  release_gate g;
  g.open(1);
  REQUIRE(g.begin("a").code == begin_code::started);
  CHECK(g.on_token("a", {"Par", 1}).empty());
  CHECK(g.on_token("a", {"is", 2}).empty());
  auto flushed = g.admission_committed("a");
  REQUIRE(flushed.size() == 2);
  CHECK(flushed[0].text == "Par");
  CHECK(flushed[1].text == "is");
  CHECK(g.on_token("a", {".", 3}).size() == 1);
}

TEST_CASE("the final answer waits for its completion record, then is remembered for retries") {
  release_gate g;
  g.open(1);
  g.begin("a");
  g.admission_committed("a");
  CHECK(g.finish("a"));
  CHECK_FALSE(g.finish("a"));  // finished once
  CHECK(g.begin("a").code == begin_code::duplicate_in_flight);
  CHECK(g.completion_committed("a", "Paris."));
  CHECK_FALSE(g.completion_committed("a", "Paris."));  // released once
  const auto retry = g.begin("a");
  CHECK(retry.code == begin_code::replay);
  CHECK(retry.outcome == "Paris.");
  CHECK(g.in_flight() == 0);
}

TEST_CASE("losing leadership fails unreleased requests with the retryable code that fits") {
  release_gate g;
  g.open(3);
  g.begin("never-admitted");
  g.begin("streaming");
  g.admission_committed("streaming");
  g.begin("completing");
  g.admission_committed("completing");
  g.finish("completing");
  std::map<std::string, failure_code> got;
  for (const auto& f : g.lose_leadership()) got[f.request_id] = f.code;
  CHECK(got.at("never-admitted") == failure_code::not_primary);
  CHECK(got.at("streaming") == failure_code::outcome_unknown);
  CHECK(got.at("completing") == failure_code::outcome_unknown);
  CHECK(g.begin("new").code == begin_code::not_primary);
  CHECK_FALSE(g.completion_committed("completing", "x"));  // a deposed primary releases nothing
  CHECK_THROWS(g.open(3));                                 // epochs only grow
  g.open(4);
  CHECK(g.begin("completing").code == begin_code::replay);  // its record did commit
}

TEST_CASE("completions committed at another site answer retries here") {
  release_gate g;
  CHECK_FALSE(g.completion_committed("elsewhere", "42"));
  g.open(2);
  const auto r = g.begin("elsewhere");
  CHECK(r.code == begin_code::replay);
  CHECK(r.outcome == "42");
}

TEST_CASE("an id whose admission committed for another request is refused, not replayed") {
  release_gate g{release_gate_limits{8, 8, 2}};
  g.open(1);
  g.admission_seen("r", "alice|model|digest-1");
  g.completion_committed("r", "answer-1");
  CHECK(g.begin("r", "alice|model|digest-1").code == begin_code::replay);  // the true retry
  CHECK(g.begin("r", "mallory|model|digest-1").code == begin_code::id_reused);
  CHECK(g.begin("r", "alice|model|digest-2").code == begin_code::id_reused);
  CHECK(g.begin("r").code == begin_code::replay);  // no fingerprint: not compared
  // Admitted but never completed (its leader died): the id is still taken.
  g.admission_seen("s", "alice|model|digest-3");
  CHECK(g.begin("s", "bob|model|digest-4").code == begin_code::id_reused);
  // The first admission wins, and the table is bounded like the outcomes.
  g.admission_seen("r", "other");
  CHECK(g.begin("r", "alice|model|digest-1").code == begin_code::replay);
  g.admission_seen("t", "t-fp");
  CHECK(g.begin("r", "anything").code == begin_code::replay);  // "r" forgotten: oldest first
}

TEST_CASE("a cancelled outcome does not end the id: a retry runs again and its answer wins") {
  release_gate g;
  g.open(1);
  // The client went away: its request ended cancelled, and that completion committed.
  REQUIRE(g.begin("c").code == begin_code::started);
  g.admission_committed("c");
  REQUIRE(g.finish("c"));
  CHECK(g.completion_committed("c", "cancelled", true));
  // Its retry runs again (nothing was released to anyone who stayed)...
  REQUIRE(g.begin("c").code == begin_code::started);
  g.admission_committed("c");
  REQUIRE(g.finish("c"));
  CHECK(g.completion_committed("c", "answer", false));
  // ...and from then on the answer is the id's outcome, here and at a site that replays
  // both completions in log order.
  CHECK(g.begin("c").code == begin_code::replay);
  CHECK(g.begin("c").outcome == "answer");
  release_gate other;
  other.open(2);
  other.completion_committed("c", "cancelled", true);
  other.completion_committed("c", "answer", false);
  CHECK(other.begin("c").outcome == "answer");
  // A final answer is never replaced by a later cancellation.
  other.completion_committed("c", "cancelled again", true);
  CHECK(other.begin("c").outcome == "answer");
}

TEST_CASE("bounds: requests in flight, held tokens and remembered outcomes") {
  release_gate g{release_gate_limits{2, 2, 2}};
  g.open(1);
  g.begin("a");
  g.begin("b");
  CHECK(g.begin("c").code == begin_code::overloaded);
  g.on_token("a", {"1", 1});
  g.on_token("a", {"2", 2});
  CHECK(g.on_token("a", {"3", 3}).empty());
  const auto f = g.take_failures();
  REQUIRE(f.size() == 1);
  CHECK(f[0].request_id == "a");
  CHECK(f[0].code == failure_code::overloaded);
  CHECK(g.in_flight() == 1);
  for (const char* id : {"x", "y", "z"}) g.completion_committed(id, id);
  CHECK(g.outcomes_remembered() == 2);
  CHECK(g.begin("x").code == begin_code::started);  // forgotten: the oldest went first
  CHECK(g.begin("z").code == begin_code::replay);
}

TEST_CASE("bounds: fingerprints forget the oldest, and a later record keeps an entry's age") {
  release_gate g{release_gate_limits{8, 8, 2}};
  g.open(1);
  g.admission_seen("p", "alice|m|1");
  g.admission_seen("q", "alice|m|2");
  g.admission_seen("r", "alice|m|3");
  CHECK(g.begin("p", "mallory|m|9").code == begin_code::started);  // forgotten: oldest first
  CHECK(g.begin("r", "mallory|m|9").code == begin_code::id_reused);

  release_gate h{release_gate_limits{8, 8, 2}};
  h.open(1);
  h.completion_committed("old", "cancelled", true);
  h.completion_committed("mid", "answer mid");
  h.completion_committed("old", "answer old");  // replaces the cancellation, stays oldest
  CHECK(h.begin("old").outcome == "answer old");
  h.completion_committed("new", "answer new");
  CHECK(h.outcomes_remembered() == 2);
  CHECK(h.begin("old").code == begin_code::started);
  CHECK(h.begin("mid").code == begin_code::replay);
}

TEST_CASE("abandon forgets a request only while nothing about it is journaled") {
  release_gate g;
  g.open(1);
  g.begin("a");
  CHECK(g.abandon("a"));
  CHECK(g.begin("a").code == begin_code::started);
  g.admission_committed("a");
  CHECK_FALSE(g.abandon("a"));  // its admission is journaled: a completion must follow
  CHECK(g.in_flight() == 1);
}
