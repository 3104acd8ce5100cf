#pragma once
// The serving port a primary site hands its gateway (DESIGN.md §4): every request passes the
// site's coordinator, which journals its admission and completion and releases tokens and the
// answer only once their records are committed. Wraps the site's local serving port.
//
// Threading: as gateway/inference_port.hpp. submit() and cancel() hand work to the coordinator
// actor and return; the release_sink calls come from the coordinator's thread.

#include "actors/coordination/coordinator.hpp"
#include "actors/gateway/inference_port.hpp"

#include <caf/actor.hpp>

#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace bastion::coordination {

class journaled_port final : public gateway::inference_port, public release_sink {
 public:
  /// REQUIRES: `inner`, `view` and `clock` outlive the port; set_coordinator() before the
  /// first submit (the coordinator needs the port as its sink, so they are made in two steps).
  journaled_port(gateway::inference_port& inner, const coordinator_view& view,
                 const clock_source& clock, std::string site, bool retain_text);

  void set_coordinator(caf::actor coordinator);

  // gateway::inference_port
  void submit(gateway::inference_request request, gateway::token_callback on_token,
              gateway::completion_callback on_done) override;
  void cancel(const std::string& request_id) override;
  std::vector<gateway::model_info> list_models() override;

  // release_sink
  void start_inner(const std::string& request_id) override;
  void cancel_inner(const std::string& request_id) override;
  void release_tokens(const std::string& request_id, std::vector<held_token> tokens) override;
  void release_done(const std::string& request_id, gateway::completion outcome) override;
  void release_committed(const std::string& request_id,
                         const std::vector<std::uint8_t>& completion_record) override;

  std::size_t pending() const;

 private:
  struct pending_request {
    gateway::inference_request request;
    gateway::token_callback on_token;
    gateway::completion_callback on_done;
    bool started = false;
    std::optional<gateway::completion> outcome;  // the inner port's, once it finished
  };

  gateway::inference_port& inner_;
  const coordinator_view& view_;
  const clock_source& clock_;
  std::string site_;
  bool retain_text_;
  caf::actor coordinator_;
  mutable std::mutex mutex_;
  std::map<std::string, pending_request> pending_;
};

}  // namespace bastion::coordination
