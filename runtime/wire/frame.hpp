#pragma once
// wire::frame: the one message type that crosses a node boundary (DESIGN.md §3). A Cap'n
// Proto message in flat form inside an envelope of kind, key id, epoch, sequence and seal.
// Schema evolution happens in Cap'n Proto, so the envelope itself never changes shape.
//
// Untrusted bytes are read only through open_frame(), which checks the envelope, copies the
// payload into aligned words and walks the whole message once against the kind's schema,
// under explicit size, traversal and nesting limits, so typed reads of the returned view
// cannot fault or throw.

#include "runtime/wire/errors.hpp"

#include <caf/expected.hpp>
#include <caf/meta/type_name.hpp>

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace bastion::wire {

/// What a frame's payload is. Values are forever; add at the end.
enum class frame_kind : std::uint16_t {
  inference_request = 1,  // schema::InferenceRequest
  inference_result = 2,   // schema::Result
  raft_message = 3,       // schema::RaftMessage, between replicators (schemas/raft.capnp)
};

/// True for kinds this build knows how to read.
bool is_known_kind(std::uint16_t kind) noexcept;

struct frame {
  std::uint16_t kind = 0;
  std::uint32_t key_id = 0;           // which link key sealed it (0 until sealing lands)
  std::uint64_t epoch = 0;            // the sender's primary epoch; receivers refuse stale ones
  std::uint64_t sequence = 0;         // per link, strictly increasing once sealing lands
  std::vector<std::uint8_t> seal;     // empty is the null seal
  std::vector<std::uint8_t> payload;  // capnp::messageToFlatArray output
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, frame& x) {
  return f(caf::meta::type_name("bastion.wire.frame"), x.kind, x.key_id, x.epoch, x.sequence,
           x.seal, x.payload);
}

/// Bounds applied to every frame read from another process.
struct limits {
  std::size_t payload_bytes_max = std::size_t{8} << 20;  // 8 MiB
  std::size_t seal_bytes_max = 64;
  int nesting_max = 32;
  // Traversal budget as a multiple of the payload's size: validation reads it once, callers
  // may read it a few more times; pointer-amplification attacks are cut off at this bound.
  std::uint64_t traversal_factor = 8;
};

struct envelope {
  std::uint32_t key_id = 0;
  std::uint64_t epoch = 0;
  std::uint64_t sequence = 0;
};

/// Serialises `message` into a frame of `kind`, with a null seal.
frame make_frame(frame_kind kind, capnp::MessageBuilder& message, envelope env = {});

/// A validated, readable payload. Owns its aligned copy of the bytes.
class message_view {
 public:
  message_view(kj::Array<capnp::word> words, const capnp::ReaderOptions& options);
  message_view(const message_view&) = delete;
  message_view& operator=(const message_view&) = delete;

  template <class Root>
  typename Root::Reader root() {
    return reader_.getRoot<Root>();
  }

  /// Size of the message in 8-byte words.
  std::size_t size_words() const noexcept { return words_.size(); }

 private:
  // Declared before reader_: the reader points into these words.
  kj::Array<capnp::word> words_;
  capnp::FlatArrayMessageReader reader_;
};

/// Checks the envelope and the payload's structure. `expected` is the kind the caller can read.
/// Errors: payload_too_large, misaligned_payload, malformed_message, unknown_kind,
/// kind_mismatch, bad_seal. Never throws; never reads outside the frame.
caf::expected<std::unique_ptr<message_view>> open_frame(const frame& f, frame_kind expected,
                                                        const limits& lim = {});

}  // namespace bastion::wire
