// wire::frame: round trips, and hostile bytes that must give a typed error, never a crash.

#include "runtime/wire/frame.hpp"
#include "schemas/inference.capnp.h"

#include <catch2/catch.hpp>

#include <capnp/message.h>

#include <random>

using bastion::wire::frame;
using bastion::wire::frame_kind;
using bastion::wire::open_frame;
using bastion::wire::wire_errc;

namespace {

frame request_frame(const std::string& model = "smollm2") {
  capnp::MallocMessageBuilder msg;
  auto req = msg.initRoot<bastion::schema::InferenceRequest>();
  req.setModelId(model);
  req.initInputData().setPrompt("What is the capital of France?");
  req.initParams().setMaxTokens(32);
  return bastion::wire::make_frame(frame_kind::inference_request, msg, {7, 3, 42});
}

wire_errc code_of(const caf::error& err) {
  REQUIRE(err.category() == bastion::wire::wire_category::value);
  return static_cast<wire_errc>(err.code());
}

}  // namespace

TEST_CASE("a request round-trips through a frame with its envelope") {
  auto f = request_frame();
  CHECK(f.kind == static_cast<std::uint16_t>(frame_kind::inference_request));
  CHECK(f.key_id == 7);
  CHECK(f.epoch == 3);
  CHECK(f.sequence == 42);
  CHECK(f.seal.empty());
  auto view = open_frame(f, frame_kind::inference_request);
  REQUIRE(view);
  auto req = (*view)->root<bastion::schema::InferenceRequest>();
  CHECK(std::string{req.getModelId().cStr()} == "smollm2");
  CHECK(std::string{req.getInputData().getPrompt().cStr()} == "What is the capital of France?");
  CHECK(req.getParams().getMaxTokens() == 32);
  CHECK(req.getParams().getTemperature() == 0.0f);  // schema default
}

TEST_CASE("envelope violations give typed errors") {
  auto f = request_frame();
  SECTION("unknown kind") {
    f.kind = 999;
    CHECK(code_of(open_frame(f, frame_kind::inference_request).error()) == wire_errc::unknown_kind);
  }
  SECTION("kind mismatch") {
    CHECK(code_of(open_frame(f, frame_kind::inference_result).error()) == wire_errc::kind_mismatch);
  }
  SECTION("a non-null seal is refused until sealing lands") {
    f.seal = {1, 2, 3};
    CHECK(code_of(open_frame(f, frame_kind::inference_request).error()) == wire_errc::bad_seal);
  }
  SECTION("oversize payload") {
    bastion::wire::limits lim;
    lim.payload_bytes_max = f.payload.size() - 8;
    CHECK(code_of(open_frame(f, frame_kind::inference_request, lim).error()) ==
          wire_errc::payload_too_large);
  }
  SECTION("empty and misaligned payloads") {
    f.payload.clear();
    CHECK(code_of(open_frame(f, frame_kind::inference_request).error()) ==
          wire_errc::misaligned_payload);
    f = request_frame();
    f.payload.pop_back();
    CHECK(code_of(open_frame(f, frame_kind::inference_request).error()) ==
          wire_errc::misaligned_payload);
  }
}

TEST_CASE("malformed payload bytes give malformed_message") {
  SECTION("truncated to its segment table") {
    auto f = request_frame();
    f.payload.resize(8);
    auto r = open_frame(f, frame_kind::inference_request);
    REQUIRE_FALSE(r);
    CHECK(code_of(r.error()) == wire_errc::malformed_message);
  }
  SECTION("a segment table declaring 2^32-1 segments") {
    frame f;
    f.kind = static_cast<std::uint16_t>(frame_kind::inference_request);
    f.payload = {0xfe, 0xff, 0xff, 0xff, 0x01, 0, 0, 0};
    CHECK(code_of(open_frame(f, frame_kind::inference_request).error()) ==
          wire_errc::malformed_message);
  }
  SECTION("a root pointer far outside the segment") {
    frame f;
    f.kind = static_cast<std::uint16_t>(frame_kind::inference_request);
    // Segment table: 1 segment of 1 word; root struct pointer with offset 0x3fffffff.
    f.payload = {0, 0, 0, 0, 1, 0, 0, 0, 0xfc, 0xff, 0xff, 0xff, 1, 0, 1, 0};
    CHECK(code_of(open_frame(f, frame_kind::inference_request).error()) ==
          wire_errc::malformed_message);
  }
  SECTION("the error message says what was wrong") {
    auto f = request_frame();
    f.payload.resize(16);
    auto r = open_frame(f, frame_kind::inference_request);
    REQUIRE_FALSE(r);
    CHECK_THAT(bastion::wire::error_detail(r.error()), Catch::Contains("Cap'n Proto reader"));
  }
}

TEST_CASE("nesting deeper than the limit is refused") {
  // InferenceRequest -> InputData -> List(ChatMessage) -> ChatMessage -> Text is 4 levels.
  capnp::MallocMessageBuilder msg;
  auto req = msg.initRoot<bastion::schema::InferenceRequest>();
  auto chat = req.initInputData().initChat(1);
  chat[0].setRole("user");
  chat[0].setContent("hi");
  auto f = bastion::wire::make_frame(frame_kind::inference_request, msg);
  bastion::wire::limits lim;
  lim.nesting_max = 2;
  CHECK(code_of(open_frame(f, frame_kind::inference_request, lim).error()) ==
        wire_errc::malformed_message);
  lim.nesting_max = 32;
  CHECK(open_frame(f, frame_kind::inference_request, lim));
}

TEST_CASE("a payload of the wrong shape for its kind is refused") {
  // Structurally valid Cap'n Proto, but the root is a list where the schema wants a struct.
  capnp::MallocMessageBuilder msg;
  msg.initRoot<capnp::AnyPointer>().initAs<capnp::List<capnp::Text>>(2).set(0, "x");
  auto f = bastion::wire::make_frame(frame_kind::inference_request, msg);
  CHECK(code_of(open_frame(f, frame_kind::inference_request).error()) ==
        wire_errc::malformed_message);
}

TEST_CASE("random corruption of a valid frame never crashes and is either read or refused") {
  std::mt19937_64 rng{20261130};
  const auto good = request_frame();
  int refused = 0, read = 0;
  for (int i = 0; i < 5000; ++i) {
    auto f = good;
    const int flips = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < flips; ++k)
      f.payload[rng() % f.payload.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
    auto r = open_frame(f, frame_kind::inference_request);
    if (!r) {
      CHECK(r.error().category() == bastion::wire::wire_category::value);
      ++refused;
      continue;
    }
    // A frame that passed validation must be readable without faults.
    auto req = (*r)->root<bastion::schema::InferenceRequest>();
    (void)req.getModelId();
    (void)req.getParams().getMaxTokens();
    ++read;
  }
  INFO("refused " << refused << ", read " << read);
  CHECK(refused > 0);
  CHECK(refused + read == 5000);
}
