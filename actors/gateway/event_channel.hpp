#pragma once
// The hop from the port's threads onto the gateway's KJ event loop, one channel per request.
//
// Producers (the port's callbacks) push from any thread: they take a mutex, append, and wake the
// loop through a KJ cross-thread fulfiller. They need no event loop of their own and never wait
// for the client. The consumer (the loop thread that created the channel) awaits next().
//
// Bound: at most tokens_max tokens wait in the channel. A client that stops reading lets them
// pile up; past the bound further tokens are dropped and the batch says `overflowed`, and the
// consumer cancels the request (it cannot deliver a stream with a hole in it).

#include "actors/gateway/inference_port.hpp"

#include <kj/async.h>

#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace bastion::gateway {

struct channel_batch {
  std::vector<token_event> tokens;
  std::optional<completion> done;  // set once, in the last batch
  bool overflowed = false;
};

class event_channel : public std::enable_shared_from_this<event_channel> {
 public:
  /// keep_tokens = false (unary requests) drops tokens on arrival: only the completion matters.
  event_channel(std::size_t tokens_max, bool keep_tokens);
  ~event_channel();
  event_channel(const event_channel&) = delete;
  event_channel& operator=(const event_channel&) = delete;

  // Producer side: any thread. Calls after the completion or after close() are dropped.
  void push_token(token_event token);
  void push_done(completion done);

  /// Consumer side. REQUIRES: called on the loop thread that will consume, one next() pending at
  /// a time. Resolves as soon as there is at least one token, the completion or an overflow.
  kj::Promise<channel_batch> next();

  /// Consumer side: stop listening. Later pushes are dropped; a pending next() is rejected.
  /// REQUIRES: called on the consumer's loop thread, before that loop is destroyed.
  void close();

 private:
  bool ready_locked() const;
  channel_batch take_locked();
  void wake(std::unique_lock<std::mutex>& lock);

  const std::size_t tokens_max_;
  const bool keep_tokens_;
  std::mutex mutex_;
  std::deque<token_event> tokens_;                         // guarded by mutex_
  std::optional<completion> done_;                         // guarded by mutex_
  bool done_delivered_ = false;                            // guarded by mutex_
  bool overflowed_ = false;                                // guarded by mutex_
  bool closed_ = false;                                    // guarded by mutex_
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> waiter_;  // guarded by mutex_; set while waiting
};

}  // namespace bastion::gateway
