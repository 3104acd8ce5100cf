// The journal directory lock: two stores (in one process or two) never open the same
// directory, the refusal names the directory and the holder's pid, and the lock goes away
// with its holder (stop(), destruction, or the process dying).

#include "journal_test_support.hpp"

#include "runtime/journal/directory_lock.hpp"

#include <sys/wait.h>
#include <unistd.h>

using namespace journal_test;

TEST_CASE("a second store on a locked directory is refused, naming the directory and pid") {
  temp_dir tmp;
  auto first = open_store(tmp.journal());
  std::unique_ptr<file_store> second;
  auto log = try_open(second, tmp.journal());
  REQUIRE_FALSE(log);
  CHECK(journal_code(log.error()) == journal_errc::locked);
  CHECK_THAT(
      error_detail(log.error()),
      Catch::Contains(tmp.journal()) && Catch::Contains("process " + std::to_string(::getpid())));
  // The refused store touched nothing: the first one still appends.
  CHECK_FALSE(append_and_wait(*first.store, 1, make_entries(1, 3, 1)));
  SECTION("stop() releases the lock and the directory opens again with its entries") {
    first.store->stop();
    auto again = open_store(tmp.journal());
    CHECK(again.log.entries.size() == 3);
  }
}

TEST_CASE("a store that failed to load does not keep the directory locked") {
  temp_dir tmp;
  {
    auto s = open_store(tmp.journal());
    REQUIRE_FALSE(append_and_wait(*s.store, 1, make_entries(1, 5, 1)));
  }
  const auto seg = segment_files(tmp.journal()).front();
  flip_bit(seg, record_offset(1, 40) + 40);  // an older record: load refuses
  std::unique_ptr<file_store> broken;
  auto log = try_open(broken, tmp.journal());
  REQUIRE_FALSE(log);
  CHECK(journal_code(log.error()) == journal_errc::corrupt_record);
  // Still alive, yet the operator's repair run is not blocked by it.
  file_store_options repair;
  repair.repair = true;
  auto repaired = open_store(tmp.journal(), repair);
  CHECK(repaired.log.entries.size() == 1);
}

TEST_CASE("another process holding the directory is named; its death frees the lock") {
  temp_dir tmp;
  fs::create_directories(tmp.journal());
  int ready[2];
  int release[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(release) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The child takes the lock, says so, and holds it until told to exit (or killed).
    auto lock = directory_lock::acquire(tmp.journal());
    const char ok = lock ? '1' : '0';
    [[maybe_unused]] auto w = ::write(ready[1], &ok, 1);
    char c = 0;
    [[maybe_unused]] auto r = ::read(release[0], &c, 1);
    ::_exit(0);
  }
  char ok = 0;
  REQUIRE(::read(ready[0], &ok, 1) == 1);
  REQUIRE(ok == '1');
  std::unique_ptr<file_store> store;
  auto log = try_open(store, tmp.journal());
  REQUIRE_FALSE(log);
  CHECK(journal_code(log.error()) == journal_errc::locked);
  CHECK_THAT(error_detail(log.error()), Catch::Contains("process " + std::to_string(child)));
  ::kill(child, SIGKILL);  // kill -9: the kernel drops the flock, no stale lock is left
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  auto s = open_store(tmp.journal());
  CHECK(s.log.entries.empty());
  for (int fd : {ready[0], ready[1], release[0], release[1]}) ::close(fd);
}

TEST_CASE("a torn snapshot temp file from a crash is ignored and removed") {
  temp_dir tmp;
  snapshot snap;
  snap.index = 3;
  snap.term = 1;
  snap.data = std::vector<std::uint8_t>(100, 9);
  {
    auto s = open_store(tmp.journal());
    REQUIRE_FALSE(append_and_wait(*s.store, 1, make_entries(1, 5, 1)));
    REQUIRE_FALSE(snapshot_and_wait(*s.store, snap, 2));
  }
  // A later snapshot's write, cut off before its fsync and rename.
  const auto torn = (fs::path{tmp.journal()} / "snapshot.tmp").string();
  write_bytes(torn, std::vector<std::uint8_t>(17, 0xee));
  auto s = open_store(tmp.journal());
  REQUIRE(s.log.snap.has_value());
  CHECK(s.log.snap->index == 3);
  CHECK(s.log.snap->data == snap.data);
  CHECK_FALSE(fs::exists(torn));
}
