// Full disks and failing devices, injected through fault_injecting_file_ops: a failed append
// reports the error, nothing it failed is ever loaded back, and the store stays usable when
// it could roll back (or says it is not when it could not).

#include "journal_test_support.hpp"

#include "tests/support/fault_injecting_file_ops.hpp"

#include <cerrno>

using namespace journal_test;

namespace {

struct faulty_store {
  std::shared_ptr<posix_file_ops> real = std::make_shared<posix_file_ops>();
  std::shared_ptr<fault_injecting_file_ops> ops = std::make_shared<fault_injecting_file_ops>(*real);
  opened_store s;
  faulty_store(const std::string& dir, file_store_options opts = {}) {
    s = open_store(dir, opts, ops);
  }
};

void check_log(const std::string& dir, std::uint64_t last, file_store_options opts = {}) {
  auto s = open_store(dir, opts);
  REQUIRE(s.log.entries.size() == last);
  for (std::uint64_t i = 1; i <= last; ++i)
    CHECK(same_entry(s.log.entries[i - 1], make_entry(i, 1)));
  CHECK_FALSE(s.store->report().torn_tail_truncated);  // the store cleaned up itself
}

}  // namespace

TEST_CASE("ENOSPC part-way through a write fails the append and leaves no partial record") {
  temp_dir tmp;
  {
    faulty_store f{tmp.journal()};
    REQUIRE_FALSE(append_and_wait(*f.s.store, 1, make_entries(1, 5, 1)));
    const auto seg = segment_files(tmp.journal()).back();
    const auto good_size = fs::file_size(seg);
    f.ops->fail_write(1, ENOSPC, 100);  // 100 of the 216 bytes reach the file
    auto err = append_and_wait(*f.s.store, 6, make_entries(6, 3, 1));
    CHECK(journal_code(err) == journal_errc::no_space);
    CHECK_THAT(error_detail(err), Catch::Contains(seg) &&
                                      Catch::Contains("offset " + std::to_string(good_size)) &&
                                      Catch::Contains("No space left on device"));
    CHECK(fs::file_size(seg) == good_size);  // cut back to the last good offset
    CHECK(f.s.store->stats().failed_appends.load() == 1);
    // Space is back: the same append succeeds, and so do later ones.
    REQUIRE_FALSE(append_and_wait(*f.s.store, 6, make_entries(6, 3, 1)));
    REQUIRE_FALSE(append_and_wait(*f.s.store, 9, make_entries(9, 1, 1)));
  }
  check_log(tmp.journal(), 9);
}

TEST_CASE("ENOSPC from fdatasync fails the append; the unsynced records never load") {
  temp_dir tmp;
  {
    faulty_store f{tmp.journal()};
    REQUIRE_FALSE(append_and_wait(*f.s.store, 1, make_entries(1, 4, 1)));
    f.ops->fail_fdatasync(1, ENOSPC);
    auto err = append_and_wait(*f.s.store, 5, make_entries(5, 2, 1));
    CHECK(journal_code(err) == journal_errc::no_space);
    CHECK_THAT(error_detail(err),
               Catch::Contains("fdatasync") && Catch::Contains("cut back to index 4"));
    // An append queued behind the failed one depended on it: it fails too.
    auto next = append_and_wait(*f.s.store, 7, make_entries(7, 1, 1));
    CHECK(journal_code(next) == journal_errc::non_contiguous);
  }
  check_log(tmp.journal(), 4);
}

TEST_CASE("EIO from fdatasync fails the whole group that shared it") {
  temp_dir tmp;
  faulty_store f{tmp.journal()};
  std::promise<void> entered;
  std::promise<void> release;
  auto release_future = release.get_future().share();
  std::atomic<int> calls{0};
  f.ops->set_fdatasync_hook([&, release_future] {
    if (calls.fetch_add(1) == 0) {
      entered.set_value();
      release_future.wait();
    }
  });
  completion_waiter first;
  f.s.store->append(1, make_entries(1, 1, 1), first.callback());
  entered.get_future().wait();
  std::vector<completion_waiter> group(5);
  for (std::uint64_t i = 0; i < group.size(); ++i) {
    f.s.store->append(2 + i, make_entries(2 + i, 1, 1), group[i].callback());
  }
  f.ops->fail_fdatasync(1, EIO);  // the call in progress was counted before its hook ran
  release.set_value();
  CHECK_FALSE(first.wait());
  for (auto& w : group) CHECK(journal_code(w.wait()) == journal_errc::io_error);
  f.ops->set_fdatasync_hook({});
  f.s.store.reset();
  check_log(tmp.journal(), 1);
}

TEST_CASE("a failure after rotating deletes the new segment and keeps the old one intact") {
  temp_dir tmp;
  file_store_options opts;
  opts.segment_bytes_max = 32 + 5 * 72;  // five 40-byte entries per segment
  {
    faulty_store f{tmp.journal(), opts};
    REQUIRE_FALSE(append_and_wait(*f.s.store, 1, make_entries(1, 3, 1)));
    REQUIRE(segment_files(tmp.journal()).size() == 1);
    // Entries 4..5 fill segment 1 (one write + fdatasync at rotation), 6..8 go to segment 2,
    // whose write fails.
    f.ops->fail_write(2, ENOSPC, 10);
    auto err = append_and_wait(*f.s.store, 4, make_entries(4, 5, 1));
    CHECK(journal_code(err) == journal_errc::no_space);
    CHECK_THAT(error_detail(err), Catch::Contains("segment-00000000000000000006.log"));
    CHECK(segment_files(tmp.journal()).size() == 1);
    CHECK(fs::file_size(segment_files(tmp.journal())[0]) == 32 + 3 * 72u);
    REQUIRE_FALSE(append_and_wait(*f.s.store, 4, make_entries(4, 1, 1)));
  }
  check_log(tmp.journal(), 4, opts);
}

TEST_CASE("when the rollback itself fails the store refuses further work until reopened") {
  temp_dir tmp;
  faulty_store f{tmp.journal()};
  REQUIRE_FALSE(append_and_wait(*f.s.store, 1, make_entries(1, 2, 1)));
  f.ops->fail_fdatasync(1, EIO);
  f.ops->fail_ftruncate(1, EIO);
  auto err = append_and_wait(*f.s.store, 3, make_entries(3, 1, 1));
  CHECK(journal_code(err) == journal_errc::io_error);
  CHECK_THAT(error_detail(err), Catch::Contains("rolling back") && Catch::Contains("reopened"));
  auto after = append_and_wait(*f.s.store, 3, make_entries(3, 1, 1));
  CHECK(journal_code(after) == journal_errc::store_failed);
  CHECK(journal_code(truncate_and_wait(*f.s.store, 2)) == journal_errc::store_failed);
}

TEST_CASE("a failed hard-state save reports the error and keeps the previous state") {
  temp_dir tmp;
  {
    faulty_store f{tmp.journal()};
    REQUIRE_FALSE(f.s.store->save_hard_state({2, 1}));
    f.ops->fail_fdatasync(1, EIO);
    auto err = f.s.store->save_hard_state({3, 3});
    CHECK(journal_code(err) == journal_errc::io_error);
    CHECK_THAT(error_detail(err), Catch::Contains("hard_state.tmp"));
    CHECK_FALSE(fs::exists(fs::path{tmp.journal()} / "hard_state.tmp"));
  }
  auto s = open_store(tmp.journal());
  CHECK(s.log.hard.term == 2);
  CHECK(s.log.hard.voted_for == 1);
}

TEST_CASE("a failed snapshot write keeps the log and the previous snapshot") {
  temp_dir tmp;
  file_store_options opts;
  opts.segment_bytes_max = 32 + 5 * 72;
  {
    faulty_store f{tmp.journal(), opts};
    REQUIRE_FALSE(append_and_wait(*f.s.store, 1, make_entries(1, 20, 1)));
    snapshot snap;
    snap.index = 15;
    snap.term = 1;
    f.ops->fail_write(1, ENOSPC, 3);
    CHECK(journal_code(snapshot_and_wait(*f.s.store, snap, 2)) == journal_errc::no_space);
    CHECK(segment_files(tmp.journal()).size() == 4);  // nothing compacted
    REQUIRE_FALSE(append_and_wait(*f.s.store, 21, make_entries(21, 1, 1)));
  }
  auto s = open_store(tmp.journal(), opts);
  CHECK_FALSE(s.log.snap.has_value());
  CHECK(s.log.entries.size() == 21);
}
