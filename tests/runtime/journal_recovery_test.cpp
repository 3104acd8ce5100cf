// Recovery: what load() does with files a crash, a bad disk or a hostile hand left behind.
// Torn tails are cut; damage before the tail is refused (naming file and offset) unless the
// store is opened with repair; hostile lengths never make load() allocate them.

#include "journal_test_support.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

using namespace journal_test;

// Track the largest single allocation, so a test can show a hostile length is never allocated.
// Every non-aligned form is replaced, so allocation and release always pair (ASan checks it).
namespace {
std::atomic<std::size_t> largest_allocation_bytes{0};

void* tracked_malloc(std::size_t n) noexcept {
  std::size_t seen = largest_allocation_bytes.load(std::memory_order_relaxed);
  while (n > seen && !largest_allocation_bytes.compare_exchange_weak(seen, n)) {
  }
  return std::malloc(n == 0 ? 1 : n);
}
}  // namespace

// Out of line, so GCC does not pair the inlined malloc/free with new/delete expressions.
[[gnu::noinline]] void* operator new(std::size_t n) {
  if (void* p = tracked_malloc(n)) return p;
  throw std::bad_alloc{};
}
[[gnu::noinline]] void* operator new[](std::size_t n) {
  if (void* p = tracked_malloc(n)) return p;
  throw std::bad_alloc{};
}
[[gnu::noinline]] void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return tracked_malloc(n);
}
[[gnu::noinline]] void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return tracked_malloc(n);
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace {

constexpr std::size_t payload = 40;
constexpr std::uint64_t record_size = 32 + payload;

// Writes entries 1..n (term 1, 40-byte payloads) into one segment and closes the store.
std::string write_log(const temp_dir& tmp, std::uint64_t n, file_store_options opts = {}) {
  auto s = open_store(tmp.journal(), opts);
  REQUIRE_FALSE(append_and_wait(*s.store, 1, make_entries(1, n, 1, payload)));
  s.store.reset();
  auto files = segment_files(tmp.journal());
  REQUIRE(!files.empty());
  return files.back();
}

void check_prefix(const recovered_log& log, std::uint64_t last) {
  REQUIRE(log.entries.size() == last);
  for (std::uint64_t i = 1; i <= last; ++i) {
    INFO("index " << i);
    CHECK(same_entry(log.entries[i - 1], make_entry(i, 1, payload)));
  }
}

caf::error load_error(const std::string& dir, file_store_options opts = {}) {
  std::unique_ptr<file_store> store;
  auto log = try_open(store, dir, opts);
  REQUIRE_FALSE(log);
  return log.error();
}

}  // namespace

TEST_CASE("a record cut in the middle of its payload is a torn tail: cut, earlier ones kept") {
  temp_dir tmp;
  const auto seg = write_log(tmp, 10);
  fs::resize_file(seg, fs::file_size(seg) - 10);
  auto s = open_store(tmp.journal());
  check_prefix(s.log, 9);
  CHECK(s.store->report().torn_tail_truncated);
  REQUIRE(s.notices().size() == 1);
  CHECK_THAT(s.notices()[0],
             Catch::Contains(seg) &&
                 Catch::Contains("offset " + std::to_string(record_offset(9, payload))));
  CHECK(fs::file_size(seg) == record_offset(9, payload));
  // The log continues from the cut, and the next open finds nothing to repair.
  REQUIRE_FALSE(append_and_wait(*s.store, 10, make_entries(10, 2, 1, payload)));
  s.store.reset();
  auto again = open_store(tmp.journal());
  check_prefix(again.log, 11);
  CHECK_FALSE(again.store->report().torn_tail_truncated);
}

TEST_CASE("a record cut inside its header is a torn tail") {
  temp_dir tmp;
  const auto seg = write_log(tmp, 5);
  fs::resize_file(seg, record_offset(4, payload) + 5);
  auto s = open_store(tmp.journal());
  check_prefix(s.log, 4);
  CHECK(s.store->report().torn_tail_truncated);
}

TEST_CASE("a bit flip in the payload of the last record is treated as a torn tail") {
  temp_dir tmp;
  const auto seg = write_log(tmp, 8);
  flip_bit(seg, record_offset(7, payload) + 32 + 17);
  auto s = open_store(tmp.journal());
  check_prefix(s.log, 7);
  CHECK(s.store->report().torn_tail_truncated);
  CHECK_FALSE(s.store->report().repaired);
}

TEST_CASE("a bit flip in the header of the last record is treated as a torn tail") {
  temp_dir tmp;
  const auto seg = write_log(tmp, 8);
  flip_bit(seg, record_offset(7, payload) + 24);  // its length field
  auto s = open_store(tmp.journal());
  check_prefix(s.log, 7);
  CHECK(s.store->report().torn_tail_truncated);
}

TEST_CASE("a zero-filled tail (file extended but never written) is a torn tail") {
  temp_dir tmp;
  const auto seg = write_log(tmp, 6);
  fs::resize_file(seg, fs::file_size(seg) + 4096);
  auto s = open_store(tmp.journal());
  check_prefix(s.log, 6);
  CHECK(fs::file_size(seg) == record_offset(6, payload));
}

TEST_CASE("a bit flip in an older record's payload is refused naming file and offset") {
  temp_dir tmp;
  const auto seg = write_log(tmp, 10);
  const auto bad = record_offset(3, payload);  // index 4
  flip_bit(seg, bad + 32 + 5);
  auto err = load_error(tmp.journal());
  CHECK(journal_code(err) == journal_errc::corrupt_record);
  CHECK_THAT(error_detail(err), Catch::Contains(seg + " at offset " + std::to_string(bad)) &&
                                    Catch::Contains("payload checksum mismatch"));
  CHECK(fs::file_size(seg) == record_offset(10, payload));  // refusing changes nothing

  SECTION("repair drops the log from the damaged record on and says so") {
    file_store_options opts;
    opts.repair = true;
    auto s = open_store(tmp.journal(), opts);
    check_prefix(s.log, 3);
    CHECK(s.store->report().repaired);
    CHECK(s.store->report().repair_dropped_from_index == 4);
    REQUIRE_FALSE(s.notices().empty());
    CHECK_THAT(s.notices().back(), Catch::Contains("repair") && Catch::Contains(seg) &&
                                       Catch::Contains("offset " + std::to_string(bad)));
    REQUIRE_FALSE(append_and_wait(*s.store, 4, make_entries(4, 1, 1, payload)));
    s.store.reset();
    auto again = open_store(tmp.journal());  // no repair needed any more
    check_prefix(again.log, 4);
  }
}

TEST_CASE("a bit flip in an older record's header is refused (valid records follow it)") {
  temp_dir tmp;
  const auto seg = write_log(tmp, 10);
  const auto bad = record_offset(2, payload);
  flip_bit(seg, bad + 24);  // the length: must not be trusted, nor read as a torn tail
  auto err = load_error(tmp.journal());
  CHECK(journal_code(err) == journal_errc::corrupt_record);
  CHECK_THAT(error_detail(err), Catch::Contains(seg + " at offset " + std::to_string(bad)) &&
                                    Catch::Contains("valid records follow"));
}

TEST_CASE("damage to the last record of an OLDER segment is refused, not taken for a tail") {
  temp_dir tmp;
  file_store_options opts;
  opts.segment_bytes_max = 32 + 5 * record_size;  // five records per segment
  write_log(tmp, 12, opts);
  auto files = segment_files(tmp.journal());
  REQUIRE(files.size() == 3);
  flip_bit(files[0], record_offset(4, payload) + 32 + 1);  // index 5, end of segment 1
  auto err = load_error(tmp.journal(), opts);
  CHECK(journal_code(err) == journal_errc::corrupt_record);
  CHECK_THAT(error_detail(err), Catch::Contains(files[0]));

  opts.repair = true;
  auto s = open_store(tmp.journal(), opts);
  check_prefix(s.log, 4);
  CHECK(segment_files(tmp.journal()).size() == 1);  // the later segments are gone
}

TEST_CASE("a missing segment in the middle is refused as a gap") {
  temp_dir tmp;
  file_store_options opts;
  opts.segment_bytes_max = 32 + 5 * record_size;
  write_log(tmp, 15, opts);
  auto files = segment_files(tmp.journal());
  REQUIRE(files.size() == 3);
  fs::remove(files[1]);
  auto err = load_error(tmp.journal(), opts);
  CHECK(journal_code(err) == journal_errc::corrupt_record);
  CHECK_THAT(error_detail(err), Catch::Contains(files[2]) && Catch::Contains("starts at index 11"));
}

TEST_CASE("hostile: a zero-length last segment holds nothing and is removed") {
  temp_dir tmp;
  file_store_options opts;
  opts.segment_bytes_max = 32 + 5 * record_size;
  write_log(tmp, 5, opts);
  const auto empty = (fs::path{tmp.journal()} / "segment-00000000000000000006.log").string();
  write_bytes(empty, {});
  auto s = open_store(tmp.journal(), opts);
  check_prefix(s.log, 5);
  CHECK_FALSE(fs::exists(empty));
  REQUIRE_FALSE(append_and_wait(*s.store, 6, make_entries(6, 1, 1, payload)));
}

TEST_CASE("hostile: a zero-length file as the only segment loads as an empty log") {
  temp_dir tmp;
  fs::create_directories(tmp.journal());
  write_bytes((fs::path{tmp.journal()} / "segment-00000000000000000001.log").string(), {});
  auto s = open_store(tmp.journal());
  CHECK(s.log.entries.empty());
  CHECK(s.log.start_index == 1);
}

TEST_CASE("hostile: a garbage file named like a segment is refused") {
  temp_dir tmp;
  fs::create_directories(tmp.journal());
  std::vector<std::uint8_t> garbage(10000);
  std::uint32_t x = 12345;
  for (auto& b : garbage) {
    x = x * 1103515245u + 12345u;
    b = static_cast<std::uint8_t>(x >> 24);
  }
  const auto path = (fs::path{tmp.journal()} / "segment-00000000000000000001.log").string();
  write_bytes(path, garbage);
  auto err = load_error(tmp.journal());
  CHECK(journal_code(err) == journal_errc::corrupt_record);
  CHECK_THAT(error_detail(err),
             Catch::Contains(path + " at offset 0") && Catch::Contains("not a journal segment"));
}

TEST_CASE("hostile: a garbage tail after valid records is cut, never returned") {
  temp_dir tmp;
  const auto seg = write_log(tmp, 4);
  auto bytes = read_bytes(seg);
  for (int i = 0; i < 500; ++i) bytes.push_back(static_cast<std::uint8_t>(i * 37 + 11));
  write_bytes(seg, bytes);
  auto s = open_store(tmp.journal());
  check_prefix(s.log, 4);
  CHECK(s.store->report().torn_tail_truncated);
}

TEST_CASE("hostile: a huge declared record length is never allocated") {
  temp_dir tmp;
  const auto seg = write_log(tmp, 3);
  // A well-formed header (valid CRC) for index 4 declaring ~4 GiB of payload, then 100 bytes.
  log_entry fake = make_entry(4, 1, 0);
  std::vector<std::uint8_t> rec;
  {
    // Encode a normal header, then patch its length and fix its CRC.
    auto s = open_store(tmp.journal() + "-scratch");
    REQUIRE_FALSE(append_and_wait(*s.store, 1, {fake}));
    s.store.reset();
    auto scratch = read_bytes(segment_files(tmp.journal() + "-scratch").back());
    rec.assign(scratch.begin() + 32, scratch.begin() + 64);
    fs::remove_all(tmp.journal() + "-scratch");
  }
  rec[8] = 4;  // index 4 (little-endian u64; the scratch record was index 1)
  rec[24] = 0xF0;
  rec[25] = 0xFF;
  rec[26] = 0xFF;
  rec[27] = 0xFF;
  const auto crc = bastion::journal::crc32c(rec.data() + 4, 28);
  for (int i = 0; i < 4; ++i) rec[i] = static_cast<std::uint8_t>(crc >> (8 * i));
  auto bytes = read_bytes(seg);
  bytes.insert(bytes.end(), rec.begin(), rec.end());
  bytes.insert(bytes.end(), 100, 0xAB);
  write_bytes(seg, bytes);

  SECTION("over record_bytes_max: refused as damage (a valid header is no torn write)") {
    largest_allocation_bytes = 0;
    auto err = load_error(tmp.journal());
    CHECK(journal_code(err) == journal_errc::corrupt_record);
    CHECK_THAT(error_detail(err),
               Catch::Contains("declares 4294967280 payload bytes") &&
                   Catch::Contains("offset " + std::to_string(record_offset(3, payload))));
    CHECK(largest_allocation_bytes.load() < (std::size_t{16} << 20));
  }
  SECTION("within record_bytes_max but past the end of the file: a torn tail") {
    file_store_options opts;
    opts.record_bytes_max = 0xFFFFFFFFu;
    largest_allocation_bytes = 0;
    auto s = open_store(tmp.journal(), opts);
    check_prefix(s.log, 3);
    CHECK(s.store->report().torn_tail_truncated);
    CHECK(largest_allocation_bytes.load() < (std::size_t{16} << 20));
  }
}

TEST_CASE("hostile: a damaged hard-state file is refused naming it") {
  temp_dir tmp;
  {
    auto s = open_store(tmp.journal());
    REQUIRE_FALSE(s.store->save_hard_state({5, 2}));
  }
  const auto path = (fs::path{tmp.journal()} / "hard_state").string();
  flip_bit(path, 9);
  auto err = load_error(tmp.journal());
  CHECK(journal_code(err) == journal_errc::corrupt_file);
  CHECK_THAT(error_detail(err), Catch::Contains(path) && Catch::Contains("checksum"));
  write_bytes(path, std::vector<std::uint8_t>(1 << 20, 0xEE));  // oversized
  CHECK(journal_code(load_error(tmp.journal())) == journal_errc::corrupt_file);
}

TEST_CASE("hostile: a damaged or lying snapshot file is refused before allocating") {
  temp_dir tmp;
  snapshot snap;
  snap.index = 3;
  snap.term = 1;
  snap.data = std::vector<std::uint8_t>(1000, 7);
  {
    auto s = open_store(tmp.journal());
    REQUIRE_FALSE(append_and_wait(*s.store, 1, make_entries(1, 5, 1, payload)));
    REQUIRE_FALSE(snapshot_and_wait(*s.store, snap, 2));
  }
  const auto path = (fs::path{tmp.journal()} / "snapshot").string();
  SECTION("body bit flip") {
    flip_bit(path, 64 + 500);
    auto err = load_error(tmp.journal());
    CHECK(journal_code(err) == journal_errc::corrupt_file);
    CHECK_THAT(error_detail(err), Catch::Contains(path) && Catch::Contains("offset 64"));
  }
  SECTION("declared size over snapshot_bytes_max") {
    file_store_options opts;
    opts.snapshot_bytes_max = 500;
    largest_allocation_bytes = 0;
    auto err = load_error(tmp.journal(), opts);
    CHECK(journal_code(err) == journal_errc::corrupt_file);
    CHECK_THAT(error_detail(err), Catch::Contains("over snapshot_bytes_max 500"));
    CHECK(largest_allocation_bytes.load() < 1000);
  }
}

TEST_CASE("a crash during an atomic replace leaves the old file in force") {
  temp_dir tmp;
  {
    auto s = open_store(tmp.journal());
    REQUIRE_FALSE(s.store->save_hard_state({4, 1}));
  }
  // The temp file of an interrupted save: written, never renamed.
  const auto tmp_path = (fs::path{tmp.journal()} / "hard_state.tmp").string();
  write_bytes(tmp_path, {1, 2, 3});
  auto s = open_store(tmp.journal());
  CHECK(s.log.hard.term == 4);
  CHECK_FALSE(fs::exists(tmp_path));
}

TEST_CASE("a crash between storing an installed snapshot and dropping the old log") {
  temp_dir tmp;
  const auto seg = write_log(tmp, 10);
  const auto old_bytes = read_bytes(seg);
  auto install_then_crash = [&](std::uint64_t index, std::uint64_t term) {
    {
      auto s = open_store(tmp.journal());
      snapshot snap;
      snap.index = index;
      snap.term = term;
      REQUIRE_FALSE(snapshot_and_wait(*s.store, snap, 0));
      CHECK(segment_files(tmp.journal()).empty());
    }
    write_bytes(seg, old_bytes);  // as if the crash came before the old segment was deleted
  };
  SECTION("old log ends before the snapshot: dropped") {
    install_then_crash(50, 4);
    auto s = open_store(tmp.journal());
    CHECK(s.log.start_index == 51);
    CHECK(s.log.entries.empty());
    REQUIRE_FALSE(s.notices().empty());
    CHECK_THAT(s.notices().back(), Catch::Contains("older than the snapshot"));
    CHECK(segment_files(tmp.journal()).empty());
  }
  SECTION("old log disagrees with the snapshot's term at its index: dropped") {
    install_then_crash(5, 4);
    auto s = open_store(tmp.journal());
    CHECK(s.log.start_index == 6);
    CHECK(s.log.entries.empty());
    CHECK_THAT(s.notices().back(), Catch::Contains("diverged"));
  }
  SECTION("old log agrees with the snapshot: kept") {
    install_then_crash(5, 1);
    auto s = open_store(tmp.journal());
    check_prefix(s.log, 10);
    CHECK(s.log.snap->index == 5);
  }
}
