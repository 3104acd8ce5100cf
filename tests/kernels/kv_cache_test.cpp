// The paged KV cache: blocks come from a bounded pool, sequences grow all-or-nothing, a full
// pool is a resource_exhausted status, and released blocks are reused.

#include "kernels/engine/kv_cache.hpp"

#include <catch2/catch.hpp>

#include <set>

using namespace bastion::kernels;

namespace {

std::unique_ptr<kv_cache> make(std::int64_t blocks, std::int64_t block_tokens = 16,
                               std::int64_t sequences_max = 8) {
  std::unique_ptr<kv_cache> kv;
  REQUIRE(kv_cache::create({2, 8, block_tokens, blocks, sequences_max}, kv));
  return kv;
}

}  // namespace

TEST_CASE("kv cache hands out whole blocks and reports use") {
  auto kv = make(10);
  CHECK(kv->blocks_total() == 10);
  CHECK(kv->blocks_free() == 10);
  REQUIRE(kv->add_sequence(7));
  std::int64_t first = -1;
  REQUIRE(kv->extend(7, 1, first));
  CHECK(first == 0);
  CHECK(kv->blocks_used() == 1);
  REQUIRE(kv->extend(7, 15, first));  // fills the first block exactly
  CHECK(first == 1);
  CHECK(kv->blocks_used() == 1);
  REQUIRE(kv->extend(7, 1, first));  // the 17th token opens a second block
  CHECK(first == 16);
  CHECK(kv->blocks_used() == 2);
  CHECK(kv->length(7) == 17);
  // Slots follow the block table.
  const auto& table = *kv->block_table(7);
  REQUIRE(table.size() == 2);
  CHECK(kv->slot(7, 0) == table[0] * 16);
  CHECK(kv->slot(7, 16) == table[1] * 16);
  CHECK(kv->slot(7, 5) == table[0] * 16 + 5);
}

TEST_CASE("a full pool refuses growth without changing the sequence") {
  auto kv = make(3, 4);
  REQUIRE(kv->add_sequence(1));
  REQUIRE(kv->add_sequence(2));
  std::int64_t first = 0;
  REQUIRE(kv->extend(1, 9, first));  // 3 blocks: the pool is full
  CHECK(kv->blocks_free() == 0);
  REQUIRE(kv->extend(1, 3, first));  // still inside the third block
  auto s = kv->extend(1, 1, first);
  CHECK(s.code() == status_code::resource_exhausted);
  CHECK_THAT(s.message(), Catch::Contains("0 free of 3"));
  CHECK(kv->length(1) == 12);
  s = kv->extend(2, 1, first);
  CHECK(s.code() == status_code::resource_exhausted);
  CHECK(kv->length(2) == 0);
  CHECK(kv->block_table(2)->empty());

  // Releasing returns every block; the other sequence can now grow into them.
  kv->release(1);
  CHECK(kv->blocks_free() == 3);
  CHECK_FALSE(kv->has_sequence(1));
  REQUIRE(kv->extend(2, 12, first));
  CHECK(kv->blocks_free() == 0);
  kv->release(1);  // unknown now: ignored
}

TEST_CASE("blocks are never shared between live sequences") {
  auto kv = make(12, 2);
  std::int64_t first = 0;
  for (sequence_id id = 1; id <= 4; ++id) {
    REQUIRE(kv->add_sequence(id));
    REQUIRE(kv->extend(id, static_cast<std::int64_t>(id) + 1, first));
  }
  kv->release(2);
  REQUIRE(kv->add_sequence(5));
  REQUIRE(kv->extend(5, 5, first));
  std::set<std::int32_t> seen;
  std::size_t total = 0;
  for (sequence_id id : {1, 3, 4, 5}) {
    for (auto b : *kv->block_table(id)) {
      CHECK(b >= 0);
      CHECK(b < 12);
      seen.insert(b);
    }
    total += kv->block_table(id)->size();
  }
  CHECK(seen.size() == total);
  CHECK(static_cast<std::int64_t>(total) == kv->blocks_used());
}

TEST_CASE("shrink drops the tail and frees emptied blocks") {
  auto kv = make(4, 4);
  REQUIRE(kv->add_sequence(1));
  std::int64_t first = 0;
  REQUIRE(kv->extend(1, 10, first));
  CHECK(kv->blocks_used() == 3);
  REQUIRE(kv->shrink(1, 6));
  CHECK(kv->length(1) == 4);
  CHECK(kv->blocks_used() == 1);
  CHECK(kv->shrink(1, 5).code() == status_code::invalid_argument);
  CHECK(kv->shrink(9, 1).code() == status_code::invalid_argument);
}

TEST_CASE("kv cache bounds: sequences, duplicates, unknown ids, shapes and memory") {
  auto kv = make(4, 4, /*sequences_max=*/2);
  REQUIRE(kv->add_sequence(1));
  CHECK(kv->add_sequence(1).code() == status_code::invalid_argument);
  REQUIRE(kv->add_sequence(2));
  CHECK(kv->add_sequence(3).code() == status_code::resource_exhausted);
  std::int64_t first = 0;
  CHECK(kv->extend(3, 1, first).code() == status_code::invalid_argument);
  CHECK(kv->extend(1, -1, first).code() == status_code::invalid_argument);
  CHECK(kv->length(3) == 0);
  CHECK(kv->block_table(3) == nullptr);

  std::unique_ptr<kv_cache> out;
  CHECK(kv_cache::create({2, 8, 0, 4, 2}, out).code() == status_code::invalid_argument);
  CHECK(kv_cache::create({0, 8, 16, 4, 2}, out).code() == status_code::invalid_argument);
  // 2 layers x 1M blocks x 16 tokens x 4096 floats: refused by the byte bound, not attempted.
  auto s = kv_cache::create({2, 4096, 16, 1 << 20, 2}, out, std::uint64_t{1} << 30);
  CHECK(s.code() == status_code::out_of_memory);
  CHECK(out == nullptr);
}
