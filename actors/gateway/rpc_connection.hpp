#pragma once
// One Cap'n Proto RPC client connection of the gateway: its byte stream, the two-party network
// over it and the RPC system that serves it a fresh Inference capability, plus the watch that
// closes it when the client goes quiet (issue 5): HTTP has KJ's header timeout, RPC has this.
//
// The idle rule, with T = gateway_settings::idle_timeout_ms:
//   - no call in flight and no incoming byte for T (counted from the last byte or the end of
//     the last call, whichever is later): closed as bastion_rpc_rejected_total
//     {reason="idle_timeout"}; a client that connects and sends nothing, or stops calling;
//   - a message started and no further byte of it for T: closed as {reason="message_timeout"},
//     even while a call is in flight (a half-open or stalled sender holds the slot otherwise);
//   - a call in flight and no message started: kept however long, the client is waiting for us
//     (a long unary call or a stream; the sink's answers to token() count as bytes anyway).
// REQUIRES: everything here lives on the gateway's loop thread.

#include "actors/gateway/gateway_context.hpp"

#include <capnp/rpc-twoparty.h>
#include <capnp/serialize-async.h>
#include <kj/async-io.h>
#include <kj/timer.h>

#include <cstddef>
#include <memory>

namespace bastion::gateway {

/// What one connection has been doing, shared by its stream (bytes), its message reader
/// (message boundaries) and its service (calls in flight), which may outlive one another
/// during teardown; hence shared ownership.
struct rpc_activity {
  explicit rpc_activity(kj::TimePoint now) : last_at(now) {}
  kj::TimePoint last_at;            // the last incoming byte, or the end of the last call
  std::size_t calls_in_flight = 0;  // calls of the client's on our service, not yet returned
  std::size_t message_bytes = 0;    // bytes of the message being read; 0 between messages
};

/// Why a connection is closed by its watch.
enum class rpc_idle_verdict { keep, idle, message_stalled };

/// The idle rule above, as of `now`.
rpc_idle_verdict judge_rpc_activity(const rpc_activity& a, kj::TimePoint now, kj::Duration timeout);

/// Counts one call in flight on a connection for its lifetime; its end restarts the idle
/// clock. A null activity (a service not bound to a watched connection) counts nothing.
class rpc_call_scope {
 public:
  rpc_call_scope(std::shared_ptr<rpc_activity> activity, kj::Timer& timer);
  ~rpc_call_scope();
  rpc_call_scope(const rpc_call_scope&) = delete;
  rpc_call_scope& operator=(const rpc_call_scope&) = delete;

 private:
  std::shared_ptr<rpc_activity> activity_;
  kj::Timer& timer_;
};

/// Reads incoming bytes through to `inner`, recording when they came and how much of the
/// current message they make.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"  // KJ's interfaces, deleted via kj::Own
class activity_stream final : public kj::AsyncIoStream {
 public:
  activity_stream(kj::AsyncIoStream& inner, std::shared_ptr<rpc_activity> activity,
                  kj::Timer& timer)
      : inner_(inner), activity_(std::move(activity)), timer_(timer) {}

  kj::Promise<std::size_t> tryRead(void* buffer, std::size_t min_bytes,
                                   std::size_t max_bytes) override;
  kj::Promise<void> write(const void* buffer, std::size_t size) override {
    return inner_.write(buffer, size);
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    return inner_.write(pieces);
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner_.whenWriteDisconnected(); }
  void shutdownWrite() override { inner_.shutdownWrite(); }
  void abortRead() override { inner_.abortRead(); }
  kj::Maybe<int> getFd() const override { return inner_.getFd(); }

 private:
  kj::Promise<std::size_t> read_from(kj::byte* buffer, std::size_t min_bytes, std::size_t max_bytes,
                                     std::size_t done);

  kj::AsyncIoStream& inner_;
  std::shared_ptr<rpc_activity> activity_;
  kj::Timer& timer_;
};

// The messages of one RPC connection, counting the ones capnp refuses to read before the RPC
// system sees them (the RPC system then aborts the connection without telling us why): framing
// that breaks the limits (too many segments, too many words) is "malformed", a message cut
// off by the client hanging up is "truncated". A whole message read ends the current one for
// the idle watch.
class counted_message_stream final : public capnp::MessageStream {
 public:
  counted_message_stream(kj::AsyncIoStream& stream, gateway_metrics& metrics,
                         std::shared_ptr<rpc_activity> activity)
      : inner_(stream), metrics_(metrics), activity_(std::move(activity)) {}

  using capnp::MessageStream::tryReadMessage;
  using capnp::MessageStream::writeMessage;
  using capnp::MessageStream::writeMessages;

  kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> tryReadMessage(
      kj::ArrayPtr<kj::AutoCloseFd> fd_space, capnp::ReaderOptions options,
      kj::ArrayPtr<capnp::word> scratch) override;
  kj::Promise<void> writeMessage(
      kj::ArrayPtr<const int> fds,
      kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) override {
    return inner_.writeMessage(fds, segments);
  }
  kj::Promise<void> writeMessages(
      kj::ArrayPtr<kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>>> messages) override {
    return inner_.writeMessages(messages);
  }
  kj::Maybe<int> getSendBufferSize() override { return inner_.getSendBufferSize(); }
  kj::Promise<void> end() override { return inner_.end(); }

 private:
  capnp::AsyncIoMessageStream inner_;
  gateway_metrics& metrics_;
  std::shared_ptr<rpc_activity> activity_;
};
#pragma GCC diagnostic pop

/// One RPC client connection. Destroying it cancels every call it carries and closes it.
class rpc_connection {
 public:
  /// `make_service` receives the connection's activity, for its calls to be counted.
  template <typename MakeService>
  rpc_connection(kj::Own<kj::AsyncIoStream> stream, gateway_context& ctx,
                 capnp::ReaderOptions options, std::size_t flow_limit_words,
                 MakeService&& make_service)
      : ctx_(ctx),
        activity_(std::make_shared<rpc_activity>(ctx.timer.now())),
        stream_(kj::mv(stream)),
        watched_(*stream_, activity_, ctx.timer),
        messages_(watched_, ctx.metrics, activity_),
        network_(messages_, capnp::rpc::twoparty::Side::SERVER, options),
        rpc_(capnp::makeRpcServer(network_, make_service(activity_))) {
    // Bounds the call messages a client may have queued on us; past it we stop reading its
    // connection until calls complete (backpressure, not buffering).
    rpc_.setFlowLimit(flow_limit_words);
  }

  /// Resolves when the connection is over: the client hung up or broke the protocol (counted
  /// as "connection_error" when it ended with an error), or the idle rule closed it (counted
  /// under its reason). The caller then destroys the connection.
  kj::Promise<void> until_closed();

 private:
  kj::Promise<void> watch_idle();

  gateway_context& ctx_;
  std::shared_ptr<rpc_activity> activity_;
  kj::Own<kj::AsyncIoStream> stream_;
  activity_stream watched_;
  counted_message_stream messages_;
  capnp::TwoPartyVatNetwork network_;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc_;
};

}  // namespace bastion::gateway
