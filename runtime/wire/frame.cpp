#include "runtime/wire/frame.hpp"

#include "schemas/inference.capnp.h"
#include "schemas/raft.capnp.h"

#include <capnp/dynamic.h>
#include <capnp/schema.h>
#include <kj/exception.h>

#include <cstring>
#include <string>

namespace bastion::wire {

bool is_known_kind(std::uint16_t kind) noexcept {
  switch (static_cast<frame_kind>(kind)) {
    case frame_kind::inference_request:
    case frame_kind::inference_result:
    case frame_kind::raft_message:
      return true;
  }
  return false;
}

namespace {

capnp::StructSchema schema_for(frame_kind kind) {
  switch (kind) {
    case frame_kind::inference_request:
      return capnp::Schema::from<schema::InferenceRequest>();
    case frame_kind::inference_result:
      return capnp::Schema::from<schema::Result>();
    case frame_kind::raft_message:
      return capnp::Schema::from<schema::RaftMessage>();
  }
  KJ_FAIL_ASSERT("frame kind without a schema", static_cast<int>(kind));
}

void walk(const capnp::DynamicValue::Reader& value);

void walk_struct(const capnp::DynamicStruct::Reader& s) {
  // Non-union fields, then the active union member: every field a typed reader could touch.
  for (auto field : s.getSchema().getNonUnionFields()) walk(s.get(field));
  KJ_IF_MAYBE (active, s.which()) {
    walk(s.get(*active));
  }
}

void walk(const capnp::DynamicValue::Reader& value) {
  switch (value.getType()) {
    case capnp::DynamicValue::STRUCT:
      walk_struct(value.as<capnp::DynamicStruct>());
      break;
    case capnp::DynamicValue::LIST:
      for (auto element : value.as<capnp::DynamicList>()) walk(element);
      break;
    default:
      // Scalars, text and data are fully checked by the get() that produced them.
      break;
  }
}

}  // namespace

frame make_frame(frame_kind kind, capnp::MessageBuilder& message, envelope env) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  frame out;
  out.kind = static_cast<std::uint16_t>(kind);
  out.key_id = env.key_id;
  out.epoch = env.epoch;
  out.sequence = env.sequence;
  out.payload.assign(bytes.begin(), bytes.end());
  return out;
}

message_view::message_view(kj::Array<capnp::word> words, const capnp::ReaderOptions& options)
    : words_(std::move(words)), reader_(words_.asPtr(), options) {}

caf::expected<std::unique_ptr<message_view>> open_frame(const frame& f, frame_kind expected,
                                                        const limits& lim) {
  if (!is_known_kind(f.kind))
    return make_error(wire_errc::unknown_kind,
                      "frame kind " + std::to_string(f.kind) + " is not known to this build");
  if (f.kind != static_cast<std::uint16_t>(expected))
    return make_error(wire_errc::kind_mismatch,
                      "frame kind " + std::to_string(f.kind) + ", expected " +
                          std::to_string(static_cast<std::uint16_t>(expected)));
  // Until link sealing lands every frame carries the null seal; anything else is refused
  // rather than silently accepted unverified.
  if (!f.seal.empty())
    return make_error(wire_errc::bad_seal,
                      "frame carries a " + std::to_string(f.seal.size()) +
                          "-byte seal but this build accepts only the null seal");
  if (f.payload.size() > lim.payload_bytes_max)
    return make_error(wire_errc::payload_too_large,
                      "payload of " + std::to_string(f.payload.size()) + " bytes exceeds " +
                          std::to_string(lim.payload_bytes_max));
  if (f.payload.empty() || f.payload.size() % sizeof(capnp::word) != 0)
    return make_error(wire_errc::misaligned_payload,
                      "payload of " + std::to_string(f.payload.size()) +
                          " bytes is not a positive whole number of 8-byte words");

  const std::size_t n_words = f.payload.size() / sizeof(capnp::word);
  auto words = kj::heapArray<capnp::word>(n_words);
  std::memcpy(words.begin(), f.payload.data(), f.payload.size());

  capnp::ReaderOptions options;
  options.nestingLimit = lim.nesting_max;
  options.traversalLimitInWords = lim.traversal_factor * n_words + 64;

  std::unique_ptr<message_view> view;
  kj::Maybe<kj::Exception> failure = kj::runCatchingExceptions([&] {
    view = std::make_unique<message_view>(std::move(words), options);
    // One typed walk against the kind's schema checks every pointer, list, text and nesting
    // depth against the limits and the schema, so typed reads afterwards cannot throw.
    walk_struct(view->root<capnp::AnyPointer>().getAs<capnp::DynamicStruct>(
        schema_for(static_cast<frame_kind>(f.kind))));
  });
  KJ_IF_MAYBE (e, failure) {
    return make_error(
        wire_errc::malformed_message,
        std::string{"payload rejected by the Cap'n Proto reader: "} + e->getDescription().cStr());
  }
  return view;
}

}  // namespace bastion::wire
