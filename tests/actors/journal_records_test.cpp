// actors/coordination/journal_records: reading a completion back for a retry when the record
// holds enum values this build does not know (a newer build wrote it, or it is damaged).

#include "actors/coordination/journal_records.hpp"
#include "schemas/journal.capnp.h"

#include <capnp/message.h>
#include <capnp/schema.h>
#include <capnp/serialize.h>
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

namespace {

namespace coordination = bastion::coordination;
namespace gateway = bastion::gateway;
namespace s = bastion::schema;
namespace j = bastion::schema::journal;

coordination::record_bytes to_bytes(capnp::MallocMessageBuilder& msg) {
  auto words = capnp::messageToFlatArray(msg);
  auto b = words.asBytes();
  return {b.begin(), b.end()};
}

/// A completion record failed with the raw error code `code`, as a peer would write it.
coordination::record_bytes failed_with(std::uint16_t code) {
  capnp::MallocMessageBuilder msg;
  auto c = msg.initRoot<j::JournalRecord>().initCompletion();
  c.setRequestId("req-1");
  c.setSite("prod");
  auto e = c.initError();
  e.setCode(static_cast<s::ErrorCode>(code));
  e.setMessage("refused upstream");
  e.setRetryAfterMs(250);
  c.setErrorParam("input");
  return to_bytes(msg);
}

/// A completion record answered with the raw finish reason `reason`.
coordination::record_bytes answered_with(std::uint16_t reason) {
  capnp::MallocMessageBuilder msg;
  auto c = msg.initRoot<j::JournalRecord>().initCompletion();
  c.setRequestId("req-2");
  c.setSite("prod");
  c.setOutputText("Paris");
  c.setFinishReason(static_cast<s::FinishReason>(reason));
  c.initUsage().setCompletionTokens(1);
  return to_bytes(msg);
}

}  // namespace

TEST_CASE("a journaled error code this build does not know reads as internal, naming it") {
  const auto outcome = coordination::outcome_of_completion(failed_with(42));
  REQUIRE(std::holds_alternative<gateway::inference_error>(outcome));
  const auto& e = std::get<gateway::inference_error>(outcome);
  CHECK(e.code == gateway::error_code::internal);
  CHECK_THAT(e.message, Catch::StartsWith("refused upstream") &&
                            Catch::Contains("journaled error code 42 is unknown"));
  // The rest of the journaled error still holds.
  CHECK(e.request_id == "req-1");
  CHECK(e.retry_after_ms == 250);
  CHECK(e.param == "input");
  CHECK_FALSE(coordination::completion_is_cancellation(failed_with(42)));
}

TEST_CASE("every error code of the schema reads back as itself") {
  for (auto en : capnp::Schema::from<s::ErrorCode>().getEnumerants()) {
    const auto raw = en.getOrdinal();
    INFO("ErrorCode " << en.getProto().getName().cStr());
    const auto outcome = coordination::outcome_of_completion(failed_with(raw));
    REQUIRE(std::holds_alternative<gateway::inference_error>(outcome));
    const auto& e = std::get<gateway::inference_error>(outcome);
    CHECK(static_cast<std::uint16_t>(e.code) == raw);
    CHECK(e.message == "refused upstream");
  }
}

TEST_CASE("a journaled finish reason this build does not know is refused, naming it") {
  const auto outcome = coordination::outcome_of_completion(answered_with(7));
  REQUIRE(std::holds_alternative<gateway::inference_error>(outcome));
  const auto& e = std::get<gateway::inference_error>(outcome);
  CHECK(e.code == gateway::error_code::internal);
  CHECK_THAT(e.message, Catch::Contains("finish reason 7, unknown to this build"));
  CHECK(e.request_id == "req-2");
}

TEST_CASE("every finish reason of the schema reads back as itself") {
  for (auto en : capnp::Schema::from<s::FinishReason>().getEnumerants()) {
    const auto raw = en.getOrdinal();
    INFO("FinishReason " << en.getProto().getName().cStr());
    const auto outcome = coordination::outcome_of_completion(answered_with(raw));
    REQUIRE(std::holds_alternative<gateway::final_result>(outcome));
    const auto& f = std::get<gateway::final_result>(outcome);
    CHECK(static_cast<std::uint16_t>(f.reason) == raw);
    CHECK(f.text == "Paris");
  }
}
