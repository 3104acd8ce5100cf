#pragma once
// Translation between libraft's `struct raft_message` and the wire::frame that carries it
// between replicators (schemas/raft.capnp). Private to the replicator.
//
// Ownership follows libraft's receive contract: when a decoded AppendEntries or
// InstallSnapshot is handed to libraft's recv callback, libraft takes over the entries array
// and its batch, or the configuration and snapshot data. decoded_message owns them until
// release() says libraft has them, and frees them otherwise.

#include "runtime/wire/frame.hpp"

#include <caf/expected.hpp>

extern "C" {
#include <raft.h>
}

#include <cstdint>
#include <memory>
#include <string>

namespace bastion::actors::raft_codec {

/// Encodes libraft's outgoing `msg` (whose server_id names the receiver) as sent by
/// `sender_id`/`sender_address`. Copies every byte; `msg` may be released afterwards.
wire::frame encode(const raft_message& msg, raft_id sender_id, const std::string& sender_address);

class decoded_message {
 public:
  decoded_message();
  ~decoded_message();
  decoded_message(const decoded_message&) = delete;
  decoded_message& operator=(const decoded_message&) = delete;

  /// libraft's view: server_id/server_address name the sender.
  raft_message& message() noexcept { return message_; }
  /// Whom the sender addressed it to.
  raft_id receiver_id() const noexcept { return receiver_id_; }
  /// Call once libraft's recv callback has taken the message (and its buffers).
  void release() noexcept { owned_ = false; }

 private:
  friend caf::expected<std::unique_ptr<decoded_message>> decode(const wire::frame&,
                                                                const wire::limits&);
  raft_message message_;
  raft_id receiver_id_ = 0;
  std::string sender_address_;  // message_.server_address points here
  bool owned_ = true;
};

/// Opens and checks `f` (wire::open_frame under `lim`, then libraft's own rules: a sender id,
/// known entry and role types). Errors are wire errors (malformed_message and the ones
/// open_frame gives); nothing throws.
caf::expected<std::unique_ptr<decoded_message>> decode(const wire::frame& f,
                                                       const wire::limits& lim);

}  // namespace bastion::actors::raft_codec
