#include "actors/gateway/port_call.hpp"

#include <utility>

namespace bastion::gateway {

port_call::port_call(inference_port& port, inference_request request, std::size_t tokens_max)
    : port_(port),
      request_id_(request.request_id),
      channel_(std::make_shared<event_channel>(tokens_max, request.stream)) {
  // The callbacks hold the channel, not this object: they may run after we are gone.
  std::weak_ptr<event_channel> weak = channel_;
  port_.submit(
      std::move(request),
      [weak](token_event token) {
        if (auto channel = weak.lock()) channel->push_token(std::move(token));
      },
      [weak](completion done) {
        if (auto channel = weak.lock()) channel->push_done(std::move(done));
      });
}

port_call::~port_call() { cancel(); }

kj::Promise<channel_batch> port_call::next() {
  return channel_->next().then([this](channel_batch batch) {
    if (batch.done) finished_ = true;
    return batch;
  });
}

void port_call::cancel() {
  if (cancelled_) return;
  cancelled_ = true;
  channel_->close();
  if (!finished_) port_.cancel(request_id_);
}

}  // namespace bastion::gateway
