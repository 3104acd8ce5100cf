// API keys: SHA-256 digests in the config, constant-time lookup, priority classes.

#include "actors/gateway/api_keys.hpp"
#include "actors/gateway/request_id.hpp"

#include <catch2/catch.hpp>

using namespace bastion::gateway;

TEST_CASE("keys are matched by SHA-256 and carry their classes") {
  // SHA-256("abc") from FIPS 180-2's example.
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string error;
  auto table =
      api_key_table::build({{"a", sha256_hex("key-a"), {"batch"}},
                            {"b",
                             "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
                             {"production", "training"}}},
                           false, error);
  REQUIRE(table);
  auto a = table->authenticate("key-a");
  REQUIRE(a);
  CHECK(a->name == "a");
  CHECK(a->may_use(priority_class::batch));
  CHECK_FALSE(a->may_use(priority_class::interactive));
  auto b = table->authenticate("abc");
  REQUIRE(b);
  CHECK(b->name == "b");
  CHECK(b->may_use(priority_class::production));
  CHECK(b->may_use(priority_class::training));
  CHECK_FALSE(table->authenticate("key-b"));
  CHECK_FALSE(table->authenticate(""));
  CHECK_FALSE(table->authenticate(sha256_hex("key-a")));  // the digest is not the key
}

TEST_CASE("bad key config is refused with the key's name; anonymous only when asked") {
  std::string error;
  CHECK_FALSE(api_key_table::build({{"short", "abcd", {}}}, false, error));
  CHECK(error.find("'short'") != std::string::npos);
  CHECK_FALSE(api_key_table::build({{"cls", sha256_hex("x"), {"urgent"}}}, false, error));
  CHECK(error.find("urgent") != std::string::npos);
  auto closed = api_key_table::build({}, false, error);
  REQUIRE(closed);
  CHECK_FALSE(closed->authenticate("anything"));
  auto open = api_key_table::build({}, true, error);
  REQUIRE(open);
  CHECK(open->authenticate("")->name == "anonymous");
  auto keyed = api_key_table::build({{"k", sha256_hex("k"), {"batch"}}}, true, error);
  CHECK_FALSE(keyed->authenticate(""));  // keys configured: anonymous is off
}

TEST_CASE("request ids: validation and minting") {
  CHECK(valid_request_id("a"));
  CHECK(valid_request_id("Ab9._:-"));
  CHECK(valid_request_id(std::string(128, 'x')));
  CHECK_FALSE(valid_request_id(""));
  CHECK_FALSE(valid_request_id(std::string(129, 'x')));
  CHECK_FALSE(valid_request_id("a b"));
  CHECK_FALSE(valid_request_id("a\r\nX-Evil: 1"));
  CHECK_FALSE(valid_request_id("caf\xc3\xa9"));
  const auto a = mint_random_request_id();
  const auto b = mint_random_request_id();
  CHECK(a.size() == 32);
  CHECK(valid_request_id(a));
  CHECK(a != b);
}
