// The small pieces under the store: segment names, record headers, the bounded op queue.

#include "runtime/journal/errors.hpp"
#include "runtime/journal/op_queue.hpp"
#include "runtime/journal/record_format.hpp"

#include <catch2/catch.hpp>

#include <caf/actor_system_config.hpp>

#include <cerrno>

using namespace bastion::journal;

TEST_CASE("segment file names round-trip and hostile names are ignored") {
  CHECK(format::segment_file_name(1) == "segment-00000000000000000001.log");
  CHECK(format::parse_segment_file_name(format::segment_file_name(1)) == 1u);
  CHECK(format::parse_segment_file_name(format::segment_file_name(18446744073709551615ull)) ==
        18446744073709551615ull);
  for (const char* bad : {"segment-00000000000000000000.log", "segment-1.log", "snapshot",
                          "segment-0000000000000000000x.log", "segment-99999999999999999999.log",
                          "segment-00000000000000000001.log.tmp", ""}) {
    INFO(bad);
    CHECK_FALSE(format::parse_segment_file_name(bad).has_value());
  }
}

TEST_CASE("a record header detects any single flipped bit") {
  log_entry e;
  e.term = 7;
  e.type = 2;
  e.payload = {1, 2, 3, 4};
  std::vector<std::uint8_t> rec;
  format::append_record(rec, 42, e);
  REQUIRE(rec.size() == 36);
  auto h = format::decode_record_header(rec.data());
  REQUIRE(h);
  CHECK(h->index == 42);
  CHECK(h->term == 7);
  CHECK(h->type == 2);
  CHECK(h->payload_bytes == 4);
  for (std::size_t bit = 0; bit < 32 * 8; ++bit) {
    auto copy = rec;
    copy[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    INFO("bit " << bit);
    CHECK_FALSE(format::decode_record_header(copy.data()).has_value());
  }
  std::vector<std::uint8_t> zeros(32, 0);
  CHECK_FALSE(format::decode_record_header(zeros.data()).has_value());
}

TEST_CASE("op_queue: bounded in count and bytes, FIFO, drains after close") {
  op_queue<int> q{3, 100};
  int a = 1, b = 2, c = 3, d = 4;
  CHECK_FALSE(q.push(a, 60));
  auto heavy = q.push(b, 50);  // 110 > 100 with one queued
  CHECK(journal_code(heavy) == journal_errc::queue_full);
  CHECK_THAT(error_detail(heavy), Catch::Contains("queue_bytes_max 100"));
  CHECK_FALSE(q.push(b, 10));
  CHECK_FALSE(q.push(c, 10));
  CHECK(journal_code(q.push(d, 0)) == journal_errc::queue_full);  // 3 = queue_ops_max
  std::vector<int> out;
  REQUIRE(q.pop_batch(out, 2));
  CHECK(out == std::vector<int>{1, 2});
  q.close();
  CHECK(journal_code(q.push(d, 0)) == journal_errc::closed);
  REQUIRE(q.pop_batch(out, 10));
  CHECK(out == std::vector<int>{3});
  CHECK_FALSE(q.pop_batch(out, 10));
  // One item is always accepted into an empty queue, however heavy.
  op_queue<int> q2{3, 100};
  CHECK_FALSE(q2.push(a, 1000));
}

TEST_CASE("journal errors render with their category, code and detail") {
  caf::actor_system_config cfg;
  announce_journal_errors(cfg);
  auto err = make_io_error(ENOSPC, "write 10 bytes to /j/segment-1.log at offset 64");
  CHECK(journal_code(err) == journal_errc::no_space);
  const auto renderer = cfg.error_renderers.find(journal_category::value);
  REQUIRE(renderer != cfg.error_renderers.end());
  const auto text = renderer->second(err.code(), err.category(), err.context());
  CHECK_THAT(text, Catch::Contains("journal.no_space") &&
                       Catch::Contains("/j/segment-1.log at offset 64") &&
                       Catch::Contains("No space left on device"));
  CHECK(journal_code(make_io_error(EIO, "x")) == journal_errc::io_error);
  CHECK(journal_code(caf::error{}) == journal_errc{});
}
