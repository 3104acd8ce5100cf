#pragma once
// One request in flight through the port, seen from the loop thread: submits on construction,
// yields the port's events through an event_channel, and cancels the request on destruction
// unless its completion arrived. Dropping the object is therefore how every abandoned request
// (client gone, stalled, deadline, gateway stopping) reaches port.cancel().
//
// REQUIRES: created, used and destroyed on the gateway's loop thread; the port outlives it.

#include "actors/gateway/event_channel.hpp"
#include "actors/gateway/inference_port.hpp"

#include <kj/async.h>

#include <cstddef>
#include <memory>
#include <string>

namespace bastion::gateway {

class port_call {
 public:
  port_call(inference_port& port, inference_request request, std::size_t tokens_max);
  ~port_call();
  port_call(const port_call&) = delete;
  port_call& operator=(const port_call&) = delete;

  /// The next batch of events; the one carrying the completion ends the call.
  kj::Promise<channel_batch> next();

  /// Cancels now (idempotent); no further events are delivered.
  void cancel();

  const std::string& request_id() const { return request_id_; }
  bool finished() const { return finished_; }

 private:
  inference_port& port_;
  std::string request_id_;
  std::shared_ptr<event_channel> channel_;
  bool finished_ = false;
  bool cancelled_ = false;
};

}  // namespace bastion::gateway
