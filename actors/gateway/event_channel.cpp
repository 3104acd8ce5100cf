// GCC 12 reports std::variant inside kj::Maybe (a promise's result) as maybe-uninitialized
// after inlining; a known false positive of its middle end, not a bug of ours.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "actors/gateway/event_channel.hpp"

#include <kj/debug.h>

#include <utility>

namespace bastion::gateway {

event_channel::event_channel(std::size_t tokens_max, bool keep_tokens)
    : tokens_max_(tokens_max), keep_tokens_(keep_tokens) {}

event_channel::~event_channel() = default;

void event_channel::push_token(token_event token) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (closed_ || done_ || done_delivered_ || !keep_tokens_) return;
  if (tokens_.size() >= tokens_max_) {
    overflowed_ = true;
  } else {
    tokens_.push_back(std::move(token));
  }
  wake(lock);
}

void event_channel::push_done(completion done) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (closed_ || done_ || done_delivered_) return;
  done_ = std::move(done);
  wake(lock);
}

void event_channel::wake(std::unique_lock<std::mutex>& lock) {
  // Fulfil outside the lock: fulfilling takes the target loop's executor lock, and the loop
  // thread may hold ours while it creates the next waiter.
  auto waiter = std::move(waiter_);
  lock.unlock();
  if (waiter.get() != nullptr) waiter->fulfill();
}

bool event_channel::ready_locked() const {
  return !tokens_.empty() || (done_.has_value() && !done_delivered_) || overflowed_;
}

channel_batch event_channel::take_locked() {
  channel_batch batch;
  batch.tokens.assign(std::make_move_iterator(tokens_.begin()),
                      std::make_move_iterator(tokens_.end()));
  tokens_.clear();
  if (done_ && !done_delivered_) {
    batch.done = std::move(done_);
    done_delivered_ = true;
    done_.reset();
  }
  batch.overflowed = overflowed_;
  return batch;
}

kj::Promise<channel_batch> event_channel::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  KJ_REQUIRE(!closed_, "next() on a closed event channel");
  if (ready_locked()) return take_locked();
  auto paf = kj::newPromiseAndCrossThreadFulfiller<void>();
  waiter_ = kj::mv(paf.fulfiller);
  lock.unlock();
  return paf.promise.then([self = shared_from_this()]() { return self->next(); });
}

void event_channel::close() {
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> waiter;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    tokens_.clear();
    waiter = std::move(waiter_);
  }
  // Dropping an unfulfilled waiter rejects a pending next(); nobody is listening any more.
}

}  // namespace bastion::gateway
