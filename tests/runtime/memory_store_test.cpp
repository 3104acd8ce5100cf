// memory_store: the log_store contract (runtime/journal/log_store.hpp) with durability that
// the test controls. Everything here is what the replicator's crash tests rely on.

#include "runtime/journal/memory_store.hpp"

#include <catch2/catch.hpp>

#include <caf/sec.hpp>

#include <string>

using bastion::journal::hard_state;
using bastion::journal::log_entry;
using bastion::journal::memory_store;
using bastion::journal::snapshot;

namespace {

log_entry entry(std::uint64_t term, const std::string& text) {
  return log_entry{term, 1, std::vector<std::uint8_t>(text.begin(), text.end())};
}

std::vector<log_entry> entries(std::uint64_t term, std::initializer_list<const char*> texts) {
  std::vector<log_entry> out;
  for (const char* t : texts) out.push_back(entry(term, t));
  return out;
}

std::string text(const log_entry& e) { return {e.payload.begin(), e.payload.end()}; }

struct recorder {
  std::vector<std::string> outcomes;  // "ok" or the error
  bastion::journal::log_store::completion record() {
    return [this](caf::error err) { outcomes.push_back(err ? caf::to_string(err) : "ok"); };
  }
};

}  // namespace

TEST_CASE("appends become durable and complete only when flushed") {
  memory_store store;
  recorder r;
  store.append(1, entries(1, {"a", "b"}), r.record());
  CHECK(store.pending() == 1);
  CHECK(r.outcomes.empty());
  CHECK(store.load()->entries.empty());  // not durable yet
  CHECK(store.flush() == 1);
  REQUIRE(r.outcomes == std::vector<std::string>{"ok"});
  auto log = store.load();
  REQUIRE(log);
  REQUIRE(log->entries.size() == 2);
  CHECK(log->start_index == 1);
  CHECK(text(log->entries[1]) == "b");
  CHECK(store.last_index() == 2);
}

TEST_CASE("a crash loses exactly what was not flushed, without running its completions") {
  memory_store store;
  recorder r;
  store.append(1, entries(1, {"a"}), r.record());
  store.flush();
  store.append(2, entries(1, {"b"}), r.record());
  store.append(3, entries(1, {"c"}), r.record());
  store.crash();
  CHECK(store.pending() == 0);
  CHECK(store.flush() == 0);
  CHECK(r.outcomes.size() == 1);  // only "a" was ever acknowledged
  auto log = store.load();
  REQUIRE(log->entries.size() == 1);
  CHECK(text(log->entries[0]) == "a");
  // The next incarnation appends after the durable tail.
  store.append(2, entries(2, {"b2"}), r.record());
  store.flush();
  CHECK(store.last_index() == 2);
  CHECK(r.outcomes.back() == "ok");
}

TEST_CASE("term and vote are durable on return and survive a crash") {
  memory_store store;
  REQUIRE(!store.save_hard_state(hard_state{7, 3}));
  store.crash();
  auto log = store.load();
  CHECK(log->hard.term == 7);
  CHECK(log->hard.voted_for == 3);
}

TEST_CASE("operations apply in the order they were issued") {
  memory_store store;
  recorder r;
  store.append(1, entries(1, {"a", "b", "c"}), r.record());
  store.truncate(2, r.record());
  store.append(2, entries(2, {"B"}), r.record());
  CHECK(store.flush() == 3);
  CHECK(r.outcomes == std::vector<std::string>{"ok", "ok", "ok"});
  auto log = store.load();
  REQUIRE(log->entries.size() == 2);
  CHECK(text(log->entries[0]) == "a");
  CHECK(text(log->entries[1]) == "B");
  CHECK(log->entries[1].term == 2);
}

TEST_CASE("flush_one completes the oldest operation only") {
  memory_store store;
  recorder r;
  store.append(1, entries(1, {"a"}), r.record());
  store.append(2, entries(1, {"b"}), r.record());
  CHECK(store.flush_one());
  CHECK(store.last_index() == 1);
  CHECK(store.pending() == 1);
  CHECK(r.outcomes.size() == 1);
}

TEST_CASE("a non-contiguous append is refused and leaves the log as it was") {
  memory_store store;
  recorder r;
  store.append(1, entries(1, {"a"}), r.record());
  store.append(3, entries(1, {"gap"}), r.record());
  store.flush();
  REQUIRE(r.outcomes.size() == 2);
  CHECK(r.outcomes[0] == "ok");
  CHECK(r.outcomes[1].find("append at index 3") != std::string::npos);
  CHECK(store.last_index() == 1);
}

TEST_CASE("an injected I/O error fails the write and leaves no half-written entry") {
  memory_store store;
  recorder r;
  store.append(1, entries(1, {"a"}), r.record());
  store.fail_next(1);
  store.flush();
  REQUIRE(r.outcomes.size() == 1);
  CHECK(r.outcomes[0] != "ok");
  CHECK(store.load()->entries.empty());
  // The disk recovers: the same append succeeds.
  store.append(1, entries(1, {"a"}), r.record());
  store.flush();
  CHECK(r.outcomes.back() == "ok");
  CHECK(store.last_index() == 1);
}

TEST_CASE("truncating before the first kept entry is refused") {
  memory_store store;
  recorder r;
  snapshot s;
  s.index = 5;
  s.term = 2;
  store.put_snapshot(s, 0, r.record());
  store.truncate(3, r.record());
  store.flush();
  REQUIRE(r.outcomes.size() == 2);
  CHECK(r.outcomes[0] == "ok");
  CHECK(r.outcomes[1].find("truncate at index 3") != std::string::npos);
}

TEST_CASE("snapshots keep `trailing` entries, or replace the whole log when trailing is 0") {
  memory_store store;
  recorder r;
  store.append(1, entries(1, {"1", "2", "3", "4", "5", "6"}), r.record());
  snapshot s;
  s.index = 5;
  s.term = 1;
  s.data = {9, 9};
  store.put_snapshot(s, 2, r.record());
  store.flush();
  auto log = store.load();
  REQUIRE(log->snap);
  CHECK(log->snap->index == 5);
  CHECK(log->start_index == 4);  // entries 4 and 5 kept before the snapshot point, then 6
  REQUIRE(log->entries.size() == 3);
  CHECK(text(log->entries[0]) == "4");
  CHECK(text(log->entries[2]) == "6");
  auto got = store.get_snapshot();
  REQUIRE(got);
  REQUIRE(*got);
  CHECK((*got)->data == std::vector<std::uint8_t>{9, 9});

  snapshot installed;
  installed.index = 20;
  installed.term = 3;
  store.put_snapshot(installed, 0, r.record());
  store.flush();
  log = store.load();
  CHECK(log->entries.empty());
  CHECK(log->start_index == 21);
  store.append(21, entries(3, {"next"}), r.record());
  store.flush();
  CHECK(store.last_index() == 21);
  CHECK(r.outcomes.back() == "ok");
}

TEST_CASE("at its bound the queue refuses at once instead of growing") {
  memory_store store{2};
  recorder r;
  store.append(1, entries(1, {"a"}), r.record());
  store.append(2, entries(1, {"b"}), r.record());
  store.append(3, entries(1, {"c"}), r.record());
  REQUIRE(r.outcomes.size() == 1);  // the third completed immediately, with the error
  CHECK(r.outcomes[0].find("queue full") != std::string::npos);
  CHECK(store.pending() == 2);
}

TEST_CASE("a completion may call back into the store") {
  memory_store store;
  bool second_done = false;
  store.append(1, entries(1, {"a"}), [&](caf::error) {
    store.append(2, entries(1, {"b"}), [&](caf::error err) { second_done = !err; });
  });
  store.flush();  // runs the first, which queues the second; flush drains both
  CHECK(second_done);
  CHECK(store.last_index() == 2);
}
