#pragma once
// The gateway's inference_port over the scheduler actor: submit and cancel become messages
// (never blocking the gateway's loop), list_models answers from a list fixed at start.

#include "actors/gateway/inference_port.hpp"
#include "actors/scheduler/scheduler_actor.hpp"
#include "actors/serving/serving_metrics.hpp"

#include <string>
#include <vector>

namespace bastion::serving {

class serving_port final : public gateway::inference_port {
 public:
  /// `metrics` may be null; otherwise it must outlive every request submitted here.
  serving_port(scheduler_actor scheduler, std::string site, std::vector<gateway::model_info> models,
               serving_metrics* metrics);

  void submit(gateway::inference_request request, gateway::token_callback on_token,
              gateway::completion_callback on_done) override;
  void cancel(const std::string& request_id) override;
  std::vector<gateway::model_info> list_models() override { return models_; }

 private:
  scheduler_actor scheduler_;
  std::string site_;
  const std::vector<gateway::model_info> models_;  // immutable: read from any thread
  serving_metrics* metrics_;
};

}  // namespace bastion::serving
