// GCC 12 under -fsanitize reports capnp's message reader inside kj::Maybe (a promise's
// result) as maybe-uninitialized, as in the other gateway files that hold promises.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "actors/gateway/rpc_connection.hpp"

#include <kj/debug.h>

namespace bastion::gateway {

rpc_idle_verdict judge_rpc_activity(const rpc_activity& a, kj::TimePoint now,
                                    kj::Duration timeout) {
  if (now - a.last_at < timeout) return rpc_idle_verdict::keep;
  if (a.message_bytes > 0) return rpc_idle_verdict::message_stalled;
  if (a.calls_in_flight == 0) return rpc_idle_verdict::idle;
  return rpc_idle_verdict::keep;
}

rpc_call_scope::rpc_call_scope(std::shared_ptr<rpc_activity> activity, kj::Timer& timer)
    : activity_(std::move(activity)), timer_(timer) {
  if (activity_) ++activity_->calls_in_flight;
}

rpc_call_scope::~rpc_call_scope() {
  if (!activity_) return;
  --activity_->calls_in_flight;
  activity_->last_at = timer_.now();
}

kj::Promise<std::size_t> activity_stream::tryRead(void* buffer, std::size_t min_bytes,
                                                  std::size_t max_bytes) {
  if (min_bytes == 0) return inner_.tryRead(buffer, min_bytes, max_bytes);
  return read_from(static_cast<kj::byte*>(buffer), min_bytes, max_bytes, 0);
}

// Reads in whatever pieces arrive, so that every byte counts as activity when it comes, not
// only when capnp's whole read (a word, a segment table, a segment) is complete.
kj::Promise<std::size_t> activity_stream::read_from(kj::byte* buffer, std::size_t min_bytes,
                                                    std::size_t max_bytes, std::size_t done) {
  return inner_.tryRead(buffer + done, 1, max_bytes - done)
      .then([this, buffer, min_bytes, max_bytes, done](std::size_t n) -> kj::Promise<std::size_t> {
        if (n > 0) {
          activity_->last_at = timer_.now();
          activity_->message_bytes += n;
        }
        const std::size_t total = done + n;
        if (n == 0 || total >= min_bytes) return total;
        return read_from(buffer, min_bytes, max_bytes, total);
      });
}

kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> counted_message_stream::tryReadMessage(
    kj::ArrayPtr<kj::AutoCloseFd> fd_space, capnp::ReaderOptions options,
    kj::ArrayPtr<capnp::word> scratch) {
  return inner_.tryReadMessage(fd_space, options, scratch)
      .then(
          [this](kj::Maybe<capnp::MessageReaderAndFds> message)
              -> kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> {
            // capnp reads a message's framing and segments exactly, never past its end.
            activity_->message_bytes = 0;
            return kj::mv(message);
          },
          [this](kj::Exception&& e) -> kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> {
            metrics_.rpc_rejected(e.getType() == kj::Exception::Type::DISCONNECTED ? "truncated"
                                                                                   : "malformed");
            return kj::mv(e);
          });
}

kj::Promise<void> rpc_connection::watch_idle() {
  const auto timeout = ctx_.settings.idle_timeout_ms * kj::MILLISECONDS;
  const auto now = ctx_.timer.now();
  auto next = activity_->last_at + timeout;
  // The clock ran out already while a call kept the connection busy: look again a whole
  // timeout later; the call's end restarts the clock, so the close comes T after it.
  if (next <= now) next = now + timeout;
  return ctx_.timer.atTime(next).then([this, timeout]() -> kj::Promise<void> {
    switch (judge_rpc_activity(*activity_, ctx_.timer.now(), timeout)) {
      case rpc_idle_verdict::idle:
        ctx_.metrics.rpc_rejected("idle_timeout");
        return kj::READY_NOW;
      case rpc_idle_verdict::message_stalled:
        ctx_.metrics.rpc_rejected("message_timeout");
        return kj::READY_NOW;
      case rpc_idle_verdict::keep:
        break;
    }
    return watch_idle();
  });
}

kj::Promise<void> rpc_connection::until_closed() {
  auto ended = network_.onDisconnect().catch_([this](kj::Exception&& e) {
    ctx_.metrics.rpc_rejected("connection_error");
    KJ_LOG(INFO, "gateway: RPC connection ended with an error", e);
  });
  return ended.exclusiveJoin(watch_idle());
}

}  // namespace bastion::gateway
