#include "actors/serving/serving_port.hpp"

#include <caf/send.hpp>

namespace bastion::serving {

serving_port::serving_port(scheduler_actor scheduler, std::string site,
                           std::vector<gateway::model_info> models, serving_metrics* metrics)
    : scheduler_(std::move(scheduler)),
      site_(std::move(site)),
      models_(std::move(models)),
      metrics_(metrics) {}

void serving_port::submit(gateway::inference_request request, gateway::token_callback on_token,
                          gateway::completion_callback on_done) {
  auto r = std::make_shared<served_request>(std::move(request), std::move(on_token),
                                            std::move(on_done), site_, metrics_);
  caf::anon_send(scheduler_, submit_atom::value, std::move(r));
}

void serving_port::cancel(const std::string& request_id) {
  caf::anon_send(scheduler_, cancel_atom::value, request_id);
}

}  // namespace bastion::serving
