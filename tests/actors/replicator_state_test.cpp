// journal_summary, the replicator's default journal_state: what it keeps of the records a
// snapshot compacts (latest epoch start, configuration in force, recent completions), that it
// survives serialize/restore exactly, its bounds, and hostile snapshot bytes refused.

#include "actors/replicator_state.hpp"
#include "actors/replicator_errors.hpp"
#include "schemas/journal.capnp.h"

#include <catch2/catch.hpp>

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstring>
#include <string>
#include <vector>

using bastion::actors::journal_summary;
using bastion::actors::journal_summary_limits;
using bastion::actors::replicator_errc;
namespace schema = bastion::schema::journal;

namespace {

std::vector<std::uint8_t> flat(capnp::MallocMessageBuilder& msg) {
  auto words = capnp::messageToFlatArray(msg);
  auto bytes = words.asBytes();
  return {bytes.begin(), bytes.end()};
}

std::vector<std::uint8_t> completion(const std::string& id, std::uint8_t digest_seed) {
  capnp::MallocMessageBuilder msg;
  auto c = msg.initRoot<schema::JournalRecord>().initCompletion();
  c.setRequestId(id);
  std::vector<capnp::byte> d(32, digest_seed);
  c.setOutputDigest(capnp::Data::Reader{d.data(), d.size()});
  c.setFinishReason(bastion::schema::FinishReason::LENGTH);
  return flat(msg);
}

std::vector<std::uint8_t> epoch(std::uint64_t e, const std::string& site) {
  capnp::MallocMessageBuilder msg;
  auto r = msg.initRoot<schema::JournalRecord>().initEpochStart();
  r.setEpoch(e);
  r.setSite(site);
  r.setLeaderId(2);
  r.setTerm(7);
  return flat(msg);
}

std::vector<std::uint8_t> policy(const std::string& name, std::uint8_t digest_seed) {
  capnp::MallocMessageBuilder msg;
  auto c = msg.initRoot<schema::JournalRecord>().initConfigurationChange();
  c.setChangedBy("alice");
  std::vector<capnp::byte> d(32, digest_seed);
  auto p = c.initPolicy();
  p.setName(name);
  p.setDocumentDigest(capnp::Data::Reader{d.data(), d.size()});
  return flat(msg);
}

}  // namespace

TEST_CASE("the summary keeps the latest epoch, the policy in force and the completions") {
  journal_summary s;
  s.apply(2, epoch(1, "prod"));
  s.apply(3, policy("capacity", 1));
  s.apply(4, completion("req-a", 0xaa));
  s.apply(5, policy("capacity", 2));
  s.apply(6, epoch(2, "dr-local"));
  s.apply(7, {'n', 'o', 't', ' ', 'a', ' ', 'r', 'e', 'c'});  // not a JournalRecord
  s.apply(8, completion("req-a", 0xbb));                      // a second completion: ignored
  CHECK(s.applied_index() == 8);
  REQUIRE(s.latest_epoch_start());
  CHECK(s.latest_epoch_start()->epoch == 2);
  CHECK(s.latest_epoch_start()->site == "dr-local");
  CHECK(s.latest_epoch_start()->index == 6);
  REQUIRE(s.configuration().count("policy:capacity") == 1);
  CHECK(s.configuration().at("policy:capacity").index == 5);
  const auto* done = s.find_completion("req-a");
  REQUIRE(done != nullptr);
  CHECK(done->index == 4);
  CHECK(done->output_digest == std::vector<std::uint8_t>(32, 0xaa));
  CHECK(s.find_completion("req-b") == nullptr);
  CHECK(s.unreadable_records() == 1);

  SECTION("restore(serialize()) gives the same state, and the same bytes again") {
    const auto bytes = s.serialize();
    journal_summary copy;
    REQUIRE_FALSE(copy.restore(bytes));
    CHECK(copy.serialize() == bytes);
    CHECK(copy.applied_index() == 8);
    CHECK(copy.latest_epoch_start()->site == "dr-local");
    CHECK(copy.configuration().at("policy:capacity").index == 5);
    REQUIRE(copy.find_completion("req-a") != nullptr);
    CHECK(copy.find_completion("req-a")->output_digest == std::vector<std::uint8_t>(32, 0xaa));
    CHECK(copy.unreadable_records() == 1);
  }
}

TEST_CASE("the completion table forgets the oldest at its bound") {
  journal_summary_limits lim;
  lim.completions_max = 3;
  journal_summary s{lim};
  for (int i = 1; i <= 5; ++i)
    s.apply(static_cast<std::uint64_t>(i), completion("r" + std::to_string(i), 1));
  CHECK(s.completions() == 3);
  CHECK(s.find_completion("r1") == nullptr);
  CHECK(s.find_completion("r2") == nullptr);
  CHECK(s.find_completion("r5") != nullptr);
}

TEST_CASE("hostile snapshot bytes are refused and leave the state as it was") {
  journal_summary s;
  s.apply(1, completion("keep", 3));
  const auto before = s.serialize();
  auto refused = [&](const std::vector<std::uint8_t>& bytes, const char* why) {
    auto err = s.restore(bytes);
    REQUIRE(err);
    CHECK(err.code() == static_cast<std::uint8_t>(replicator_errc::bad_snapshot));
    CHECK_THAT(bastion::actors::replicator_error_detail(err), Catch::Contains(why));
    CHECK(s.serialize() == before);
  };
  refused({1, 2, 3}, "whole number");
  refused(std::vector<std::uint8_t>(64, 0xff), "does not read");
  auto truncated = before;
  truncated.resize(truncated.size() - 16);
  refused(truncated, "does not read");
  journal_summary_limits small;
  small.serialized_bytes_max = 8;
  journal_summary tight{small};
  auto err = tight.restore(before);
  REQUIRE(err);
  CHECK_THAT(bastion::actors::replicator_error_detail(err),
             Catch::Contains("serialized_bytes_max 8"));
}

// What a subscriber that never saw the compacted entries gets instead (covered_records): the
// configuration in force, oldest change first, then the remembered completions in log order,
// each a JournalRecord; the completions carry digest and finish reason, never text or a site,
// which is how a replay tells "compacted" from an answer. No epoch start is repeated.
TEST_CASE("covered records stand for the configuration in force and the completions") {
  journal_summary s;
  s.apply(1, epoch(3, "prod"));
  s.apply(2, policy("retention", 1));
  s.apply(3, completion("req-a", 7));
  s.apply(4, policy("audit", 2));
  s.apply(5, policy("retention", 3));  // replaces the first
  s.apply(6, completion("req-b", 8));
  const auto records = s.covered_records();
  REQUIRE(records.size() == 4);
  auto read = [](const std::vector<std::uint8_t>& bytes, auto&& check) {
    REQUIRE(bytes.size() % sizeof(capnp::word) == 0);
    kj::Array<capnp::word> words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
    std::memcpy(words.begin(), bytes.data(), bytes.size());
    capnp::FlatArrayMessageReader reader{words};
    check(reader.getRoot<schema::JournalRecord>());
  };
  read(records[0], [](schema::JournalRecord::Reader r) {
    REQUIRE(r.isConfigurationChange());
    CHECK(std::string{r.getConfigurationChange().getPolicy().getName().cStr()} == "audit");
  });
  read(records[1], [](schema::JournalRecord::Reader r) {
    REQUIRE(r.isConfigurationChange());
    auto p = r.getConfigurationChange().getPolicy();
    CHECK(std::string{p.getName().cStr()} == "retention");
    CHECK(p.getDocumentDigest()[0] == 3);  // the later change, not the first
  });
  const char* ids[] = {"req-a", "req-b"};
  const std::uint8_t seeds[] = {7, 8};
  for (int i = 0; i < 2; ++i)
    read(records[2 + i], [&](schema::JournalRecord::Reader r) {
      REQUIRE(r.isCompletion());
      auto c = r.getCompletion();
      CHECK(std::string{c.getRequestId().cStr()} == ids[i]);
      CHECK(c.getOutputDigest().size() == 32);
      CHECK(c.getOutputDigest()[0] == seeds[i]);
      CHECK(c.getFinishReason() == bastion::schema::FinishReason::LENGTH);
      CHECK_FALSE(c.hasOutputText());
      CHECK_FALSE(c.hasSite());
    });
  // After a snapshot round trip the same records come out.
  journal_summary restored;
  REQUIRE(!restored.restore(s.serialize()));
  CHECK(restored.covered_records() == records);
  CHECK(journal_summary{}.covered_records().empty());
}

// A failed request's completion keeps its error through compaction: a retry of it after a
// snapshot must be refused with the same typed error, not a generic "only the digest" one.
TEST_CASE("covered records keep a failed request's error, its message bounded") {
  journal_summary_limits limits;
  limits.error_message_bytes_max = 16;
  journal_summary s{limits};
  capnp::MallocMessageBuilder msg;
  auto c = msg.initRoot<schema::JournalRecord>().initCompletion();
  c.setRequestId("req-failed");
  auto e = c.initError();
  e.setCode(bastion::schema::ErrorCode::INVALID_ARGUMENT);
  e.setReason(bastion::schema::ErrorReason::PROMPT_TOO_LONG);
  e.setMessage("the prompt is 9000 tokens, more than the context");
  e.setRetryAfterMs(7);
  c.setErrorParam("input");
  s.apply(1, flat(msg));
  s.apply(2, completion("req-answered", 9));
  REQUIRE(s.find_completion("req-failed") != nullptr);
  REQUIRE(s.find_completion("req-failed")->error);
  CHECK_FALSE(s.find_completion("req-answered")->error);

  const auto records = s.covered_records();
  REQUIRE(records.size() == 2);
  kj::Array<capnp::word> words =
      kj::heapArray<capnp::word>(records[0].size() / sizeof(capnp::word));
  std::memcpy(words.begin(), records[0].data(), records[0].size());
  capnp::FlatArrayMessageReader reader{words};
  auto covered = reader.getRoot<schema::JournalRecord>().getCompletion();
  CHECK(std::string{covered.getRequestId().cStr()} == "req-failed");
  REQUIRE(covered.hasError());
  CHECK(covered.getError().getCode() == bastion::schema::ErrorCode::INVALID_ARGUMENT);
  CHECK(covered.getError().getReason() == bastion::schema::ErrorReason::PROMPT_TOO_LONG);
  CHECK(std::string{covered.getError().getMessage().cStr()} == "the prompt is 90");  // 16 bytes
  CHECK(covered.getError().getRetryAfterMs() == 7);
  CHECK(std::string{covered.getErrorParam().cStr()} == "input");

  journal_summary restored{limits};
  REQUIRE(!restored.restore(s.serialize()));
  CHECK(restored.covered_records() == records);
}
