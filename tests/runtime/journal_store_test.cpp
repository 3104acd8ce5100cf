// file_store on real files: round trips across segments, group commit, ordering, truncation,
// hard state, snapshots and compaction, and the bounds (total size, record size, queue).

#include "journal_test_support.hpp"

#include "tests/support/fault_injecting_file_ops.hpp"

#include <atomic>
#include <thread>

using namespace journal_test;

namespace {

void check_entries(const recovered_log& log, std::uint64_t first, std::uint64_t last,
                   std::uint64_t term, std::size_t size = 40) {
  REQUIRE(log.start_index == first);
  REQUIRE(log.entries.size() == last - first + 1);
  for (std::uint64_t i = first; i <= last; ++i) {
    INFO("index " << i);
    CHECK(same_entry(log.entries[i - first], make_entry(i, term, size)));
  }
}

file_store_options small_segments() {
  file_store_options opts;
  opts.segment_bytes_max = 1024;  // 14 records of 40 bytes (72 on disk) per segment
  return opts;
}

}  // namespace

TEST_CASE("a fresh directory loads as an empty log with no hard state or snapshot") {
  temp_dir tmp;
  auto s = open_store(tmp.journal());
  CHECK(s.log.start_index == 1);
  CHECK(s.log.entries.empty());
  CHECK(s.log.hard.term == 0);
  CHECK(s.log.hard.voted_for == 0);
  CHECK_FALSE(s.log.snap.has_value());
  CHECK(fs::is_directory(tmp.journal()));
}

TEST_CASE("entries written across several segments load back identically") {
  temp_dir tmp;
  {
    auto s = open_store(tmp.journal(), small_segments());
    std::uint64_t next = 1;
    for (std::size_t batch : {1u, 5u, 17u, 3u, 40u, 34u}) {
      REQUIRE_FALSE(append_and_wait(*s.store, next, make_entries(next, batch, 2)));
      next += batch;
    }
    CHECK(next == 101);
  }
  CHECK(segment_files(tmp.journal()).size() >= 7);  // 100 records of 72 bytes, 1 KiB segments
  for (const auto& f : segment_files(tmp.journal())) CHECK(fs::file_size(f) <= 1024);
  auto s = open_store(tmp.journal(), small_segments());
  check_entries(s.log, 1, 100, 2);
  CHECK_FALSE(s.store->report().torn_tail_truncated);
  // The reopened store continues the log where it ended.
  REQUIRE_FALSE(append_and_wait(*s.store, 101, make_entries(101, 5, 3)));
  s.store.reset();
  auto again = open_store(tmp.journal(), small_segments());
  REQUIRE(again.log.entries.size() == 105);
  CHECK(same_entry(again.log.entries[104], make_entry(105, 3)));
}

TEST_CASE("a record larger than a segment gets a segment of its own") {
  temp_dir tmp;
  {
    auto s = open_store(tmp.journal(), small_segments());
    REQUIRE_FALSE(append_and_wait(*s.store, 1, make_entries(1, 1, 1, 40)));
    REQUIRE_FALSE(append_and_wait(*s.store, 2, make_entries(2, 1, 1, 5000)));
    REQUIRE_FALSE(append_and_wait(*s.store, 3, make_entries(3, 1, 1, 40)));
  }
  CHECK(segment_files(tmp.journal()).size() == 3);
  auto s = open_store(tmp.journal(), small_segments());
  REQUIRE(s.log.entries.size() == 3);
  CHECK(same_entry(s.log.entries[1], make_entry(2, 1, 5000)));
}

TEST_CASE("group commit: appends waiting together share one fdatasync") {
  temp_dir tmp;
  auto real = std::make_shared<posix_file_ops>();  // outlives the wrapper below
  auto faulty = std::make_shared<fault_injecting_file_ops>(*real);
  auto s = open_store(tmp.journal(), {}, faulty);
  const std::uint64_t syncs_before = faulty->fdatasync_count();

  // Hold the I/O thread inside the first group's fdatasync while the other appends queue up.
  std::promise<void> entered;
  std::promise<void> release;
  auto release_future = release.get_future().share();
  std::atomic<int> hook_calls{0};
  faulty->set_fdatasync_hook([&, release_future] {
    if (hook_calls.fetch_add(1) == 0) {
      entered.set_value();
      release_future.wait();
    }
  });

  constexpr int appends = 16;
  std::vector<completion_waiter> waiters(appends);
  std::vector<std::uint64_t> syncs_seen(appends, 0);
  for (int i = 0; i < appends; ++i) {
    auto cb = waiters[i].callback();
    s.store->append(static_cast<std::uint64_t>(i + 1), make_entries(i + 1, 1, 1),
                    [&, i, cb](caf::error err) {
                      syncs_seen[i] = faulty->fdatasync_count();
                      cb(std::move(err));
                    });
    if (i == 0) entered.get_future().wait();  // the first append is alone in its group
  }
  release.set_value();
  for (auto& w : waiters) CHECK_FALSE(w.wait());

  const std::uint64_t syncs = faulty->fdatasync_count() - syncs_before;
  CHECK(syncs == 2);  // one for the first append, one for the 15 that waited behind it
  CHECK(syncs < static_cast<std::uint64_t>(appends));
  CHECK(s.store->stats().group_commits.load() == 2);
  // Every callback ran after the fsync that made its entry durable.
  for (int i = 0; i < appends; ++i) CHECK(syncs_seen[i] >= syncs_before + (i == 0 ? 1 : 2));
  faulty->set_fdatasync_hook({});
  s.store.reset();
  auto again = open_store(tmp.journal());
  check_entries(again.log, 1, appends, 1);
}

TEST_CASE("append, truncate and append issued back to back apply in call order") {
  temp_dir tmp;
  auto s = open_store(tmp.journal(), small_segments());
  completion_waiter a, t, b;
  s.store->append(1, make_entries(1, 30, 1), a.callback());
  s.store->truncate(21, t.callback());
  s.store->append(21, make_entries(21, 5, 2), b.callback());
  CHECK_FALSE(a.wait());
  CHECK_FALSE(t.wait());
  CHECK_FALSE(b.wait());
  s.store.reset();
  auto again = open_store(tmp.journal(), small_segments());
  REQUIRE(again.log.entries.size() == 25);
  for (std::uint64_t i = 1; i <= 20; ++i)
    CHECK(same_entry(again.log.entries[i - 1], make_entry(i, 1)));
  for (std::uint64_t i = 21; i <= 25; ++i)
    CHECK(same_entry(again.log.entries[i - 1], make_entry(i, 2)));
}

TEST_CASE("truncate into an earlier segment deletes the later segment files") {
  temp_dir tmp;
  auto s = open_store(tmp.journal(), small_segments());
  REQUIRE_FALSE(append_and_wait(*s.store, 1, make_entries(1, 60, 1)));
  const auto before = segment_files(tmp.journal()).size();
  REQUIRE(before >= 4);
  REQUIRE_FALSE(truncate_and_wait(*s.store, 10));
  CHECK(segment_files(tmp.journal()).size() == 1);
  // Truncating past the end changes nothing.
  REQUIRE_FALSE(truncate_and_wait(*s.store, 50));
  REQUIRE_FALSE(append_and_wait(*s.store, 10, make_entries(10, 3, 4)));
  s.store.reset();
  auto again = open_store(tmp.journal(), small_segments());
  REQUIRE(again.log.entries.size() == 12);
  CHECK(same_entry(again.log.entries[8], make_entry(9, 1)));
  CHECK(same_entry(again.log.entries[9], make_entry(10, 4)));
  CHECK(same_entry(again.log.entries[11], make_entry(12, 4)));
}

TEST_CASE("an append that does not continue the log fails with non_contiguous") {
  temp_dir tmp;
  auto s = open_store(tmp.journal());
  REQUIRE_FALSE(append_and_wait(*s.store, 1, make_entries(1, 3, 1)));
  auto gap = append_and_wait(*s.store, 5, make_entries(5, 1, 1));
  CHECK(journal_code(gap) == journal_errc::non_contiguous);
  CHECK_THAT(error_detail(gap),
             Catch::Contains("append at index 5") && Catch::Contains("next index is 4"));
  auto overlap = append_and_wait(*s.store, 2, make_entries(2, 1, 1));
  CHECK(journal_code(overlap) == journal_errc::non_contiguous);
  CHECK_FALSE(append_and_wait(*s.store, 4, make_entries(4, 1, 1)));
}

TEST_CASE("hard state is durable when save_hard_state returns and survives reopening") {
  temp_dir tmp;
  {
    auto s = open_store(tmp.journal());
    REQUIRE_FALSE(s.store->save_hard_state({3, 2}));
    REQUIRE_FALSE(s.store->save_hard_state({7, 1}));
    // The file is in place (renamed, no temp left) before the store is even closed.
    CHECK(fs::exists(fs::path{tmp.journal()} / "hard_state"));
    CHECK_FALSE(fs::exists(fs::path{tmp.journal()} / "hard_state.tmp"));
  }
  auto s = open_store(tmp.journal());
  CHECK(s.log.hard.term == 7);
  CHECK(s.log.hard.voted_for == 1);
}

TEST_CASE("a snapshot compacts whole segments before index - trailing") {
  temp_dir tmp;
  snapshot snap;
  snap.index = 80;
  snap.term = 1;
  snap.configuration_index = 1;
  snap.configuration = {1, 2, 3};
  snap.data = std::vector<std::uint8_t>(3000, 0x5A);
  std::uint64_t start = 0;
  {
    auto s = open_store(tmp.journal(), small_segments());
    REQUIRE_FALSE(append_and_wait(*s.store, 1, make_entries(1, 100, 1)));
    const auto before = segment_files(tmp.journal()).size();
    REQUIRE_FALSE(snapshot_and_wait(*s.store, snap, 10));
    const auto after = segment_files(tmp.journal()).size();
    CHECK(after < before);
    auto got = s.store->get_snapshot();
    REQUIRE(got);
    REQUIRE(got->has_value());
    CHECK((*got)->index == 80);
    CHECK((*got)->data == snap.data);
  }
  auto s = open_store(tmp.journal(), small_segments());
  REQUIRE(s.log.snap.has_value());
  CHECK(s.log.snap->index == 80);
  CHECK(s.log.snap->term == 1);
  CHECK(s.log.snap->configuration_index == 1);
  CHECK(s.log.snap->configuration == snap.configuration);
  CHECK(s.log.snap->data == snap.data);
  start = s.log.start_index;
  CHECK(start > 1);    // old segments are gone
  CHECK(start <= 70);  // the 10 trailing entries before the snapshot are kept
  check_entries(s.log, start, 100, 1);
  REQUIRE_FALSE(append_and_wait(*s.store, 101, make_entries(101, 1, 1)));
}

TEST_CASE("an installed snapshot (trailing 0) replaces the log; appends continue after it") {
  temp_dir tmp;
  snapshot snap;
  snap.index = 500;
  snap.term = 9;
  snap.data = {4, 5, 6};
  {
    auto s = open_store(tmp.journal(), small_segments());
    REQUIRE_FALSE(append_and_wait(*s.store, 1, make_entries(1, 40, 1)));
    REQUIRE_FALSE(snapshot_and_wait(*s.store, snap, 0));
    CHECK(segment_files(tmp.journal()).empty());
    CHECK(journal_code(append_and_wait(*s.store, 41, make_entries(41, 1, 1))) ==
          journal_errc::non_contiguous);
    REQUIRE_FALSE(append_and_wait(*s.store, 501, make_entries(501, 3, 9)));
  }
  auto s = open_store(tmp.journal(), small_segments());
  REQUIRE(s.log.snap.has_value());
  CHECK(s.log.snap->index == 500);
  check_entries(s.log, 501, 503, 9);
}

TEST_CASE("an installed snapshot over an empty log loads with start_index after it") {
  temp_dir tmp;
  snapshot snap;
  snap.index = 42;
  snap.term = 3;
  {
    auto s = open_store(tmp.journal());
    REQUIRE_FALSE(snapshot_and_wait(*s.store, snap, 0));
  }
  auto s = open_store(tmp.journal());
  CHECK(s.log.start_index == 43);
  CHECK(s.log.entries.empty());
  REQUIRE_FALSE(append_and_wait(*s.store, 43, make_entries(43, 1, 3)));
}

TEST_CASE("total_bytes_max refuses an append with journal_full until a snapshot compacts") {
  temp_dir tmp;
  file_store_options opts = small_segments();
  opts.total_bytes_max = 4096;
  auto s = open_store(tmp.journal(), opts);
  std::uint64_t next = 1;
  caf::error err;
  for (int i = 0; i < 200 && !err; ++i) {
    err = append_and_wait(*s.store, next, make_entries(next, 1, 1));
    if (!err) ++next;
  }
  REQUIRE(err);
  CHECK(journal_code(err) == journal_errc::journal_full);
  CHECK_THAT(error_detail(err), Catch::Contains("total_bytes_max is 4096"));
  std::uint64_t on_disk = 0;
  for (const auto& f : segment_files(tmp.journal())) on_disk += fs::file_size(f);
  CHECK(on_disk <= 4096);
  // Compaction frees whole segments, and appends are accepted again.
  snapshot snap;
  snap.index = next - 1;
  snap.term = 1;
  REQUIRE_FALSE(snapshot_and_wait(*s.store, snap, 5));
  CHECK_FALSE(append_and_wait(*s.store, next, make_entries(next, 1, 1)));
  s.store.reset();
  auto again = open_store(tmp.journal(), opts);
  CHECK(again.log.entries.back().payload == make_entry(next, 1).payload);
}

TEST_CASE("a payload over record_bytes_max is refused and leaves the log usable") {
  temp_dir tmp;
  file_store_options opts;
  opts.record_bytes_max = 1000;
  auto s = open_store(tmp.journal(), opts);
  auto err = append_and_wait(*s.store, 1, make_entries(1, 2, 1, 1001));
  CHECK(journal_code(err) == journal_errc::record_too_large);
  CHECK_THAT(error_detail(err), Catch::Contains("1001 payload bytes"));
  CHECK_FALSE(append_and_wait(*s.store, 1, make_entries(1, 2, 1, 1000)));
}

TEST_CASE("a full I/O queue refuses the next operation at once with queue_full") {
  temp_dir tmp;
  auto real = std::make_shared<posix_file_ops>();
  auto faulty = std::make_shared<fault_injecting_file_ops>(*real);
  file_store_options opts;
  opts.queue_ops_max = 2;
  auto s = open_store(tmp.journal(), opts, faulty);
  std::promise<void> entered;
  std::promise<void> release;
  auto release_future = release.get_future().share();
  std::atomic<int> calls{0};
  faulty->set_fdatasync_hook([&, release_future] {
    if (calls.fetch_add(1) == 0) {
      entered.set_value();
      release_future.wait();
    }
  });
  completion_waiter first, second, third, refused;
  s.store->append(1, make_entries(1, 1, 1), first.callback());
  entered.get_future().wait();  // the I/O thread holds the first append
  s.store->append(2, make_entries(2, 1, 1), second.callback());
  s.store->append(3, make_entries(3, 1, 1), third.callback());
  s.store->append(4, make_entries(4, 1, 1), refused.callback());
  auto err = refused.wait();  // completes before the I/O thread is released
  CHECK(journal_code(err) == journal_errc::queue_full);
  CHECK_THAT(error_detail(err), Catch::Contains("queue_ops_max is 2"));
  release.set_value();
  CHECK_FALSE(first.wait());
  CHECK_FALSE(second.wait());
  CHECK_FALSE(third.wait());
  faulty->set_fdatasync_hook({});
  CHECK_FALSE(append_and_wait(*s.store, 4, make_entries(4, 1, 1)));
}

TEST_CASE("stop drains queued appends; later operations fail with closed") {
  temp_dir tmp;
  auto s = open_store(tmp.journal());
  std::vector<completion_waiter> waiters(50);
  for (std::uint64_t i = 0; i < waiters.size(); ++i) {
    s.store->append(i + 1, make_entries(i + 1, 1, 1), waiters[i].callback());
  }
  s.store->stop();
  for (auto& w : waiters) CHECK_FALSE(w.wait());
  CHECK(journal_code(append_and_wait(*s.store, 51, make_entries(51, 1, 1))) ==
        journal_errc::closed);
  s.store.reset();
  auto again = open_store(tmp.journal());
  check_entries(again.log, 1, 50, 1);
}

TEST_CASE("operations before load() fail with closed, and bad options are refused by load") {
  temp_dir tmp;
  file_store store{tmp.journal(), {}, real_ops()};
  CHECK(journal_code(append_and_wait(store, 1, make_entries(1, 1, 1))) == journal_errc::closed);
  CHECK(journal_code(store.save_hard_state({1, 1})) == journal_errc::closed);
  file_store_options bad;
  bad.segment_bytes_max = 10;
  file_store bad_store{tmp.journal(), bad, real_ops()};
  auto log = bad_store.load();
  REQUIRE_FALSE(log);
  CHECK(journal_code(log.error()) == journal_errc::invalid_options);
  CHECK_THAT(error_detail(log.error()), Catch::Contains("segment_bytes_max = 10"));
}

TEST_CASE("group commit linger: after a shared group, appends arriving just behind join") {
  temp_dir tmp;
  auto real = std::make_shared<posix_file_ops>();
  auto faulty = std::make_shared<fault_injecting_file_ops>(*real);
  file_store_options opts;
  opts.group_commit_linger_us = 500'000;
  opts.batch_ops_max = 2;  // a group of two ends the linger at once
  auto s = open_store(tmp.journal(), opts, faulty);

  // A lone caller never waits for the linger.
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE_FALSE(append_and_wait(*s.store, 1, make_entries(1, 1, 1)));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(450));

  // Make a group of two: hold the I/O thread in an fsync while two appends queue.
  std::promise<void> entered;
  std::promise<void> release;
  auto release_future = release.get_future().share();
  std::atomic<int> calls{0};
  faulty->set_fdatasync_hook([&, release_future] {
    if (calls.fetch_add(1) == 0) {
      entered.set_value();
      release_future.wait();
    }
  });
  completion_waiter held, a, b;
  s.store->append(2, make_entries(2, 1, 1), held.callback());
  entered.get_future().wait();
  s.store->append(3, make_entries(3, 1, 1), a.callback());
  s.store->append(4, make_entries(4, 1, 1), b.callback());
  release.set_value();
  REQUIRE_FALSE(held.wait());
  REQUIRE_FALSE(a.wait());
  REQUIRE_FALSE(b.wait());
  faulty->set_fdatasync_hook({});

  // The previous group was shared, so the next one lingers: an append 50 ms behind the first
  // still joins it, and both share one fdatasync.
  const auto syncs_before = faulty->fdatasync_count();
  completion_waiter c, d;
  s.store->append(5, make_entries(5, 1, 1), c.callback());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  s.store->append(6, make_entries(6, 1, 1), d.callback());
  REQUIRE_FALSE(c.wait());
  REQUIRE_FALSE(d.wait());
  CHECK(faulty->fdatasync_count() - syncs_before == 1);
}
