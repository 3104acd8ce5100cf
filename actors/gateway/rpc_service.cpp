// GCC 12 reports std::variant inside kj::Maybe (a promise's result) as maybe-uninitialized
// after inlining; a known false positive of its middle end, not a bug of ours.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "actors/gateway/rpc_service.hpp"

#include "actors/gateway/port_call.hpp"

#include <kj/debug.h>

#include <cmath>
#include <optional>
#include <string_view>
#include <utility>

namespace bastion::gateway {

namespace {

constexpr std::uint32_t deadline_ms_max = 3600 * 1000;

inference_error refuse(error_code code, std::string message, std::string request_id = {}) {
  return inference_error{code, std::move(message), std::move(request_id), 0, {}};
}

std::string text(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }

std::optional<inference_error> check_range(const char* name, float v, float lo, bool lo_open,
                                           float hi) {
  const bool below = lo_open ? !(v > lo) : !(v >= lo);
  if (!std::isfinite(v) || below || v > hi) {
    return refuse(error_code::invalid_argument, std::string("params.") + name + " must be in " +
                                                    (lo_open ? "(" : "[") + std::to_string(lo) +
                                                    ", " + std::to_string(hi) + "], got " +
                                                    std::to_string(v));
  }
  return std::nullopt;
}

std::variant<inference_request, inference_error> admit(gateway_context& ctx,
                                                       capnp::Text::Reader model_id,
                                                       schema::InputData::Reader input,
                                                       schema::Params::Reader params, bool stream) {
  inference_request req;
  req.stream = stream;

  // Identity first, so that every later refusal names the request id.
  if (params.hasRequestId()) {
    req.request_id = text(params.getRequestId());
    if (!valid_request_id(req.request_id)) {
      // The client's id cannot be echoed; the refusal carries a minted one, as over HTTP.
      return refuse(error_code::invalid_argument,
                    "params.requestId must be 1..128 characters from [A-Za-z0-9._:-]",
                    ctx.mint_id());
    }
  }
  if (req.request_id.empty()) req.request_id = ctx.mint_id();
  const auto& id = req.request_id;

  const std::string key = params.hasApiKey() ? text(params.getApiKey()) : std::string();
  const auto who = ctx.keys.authenticate(key);
  if (!who) {
    return refuse(error_code::unauthenticated,
                  key.empty() ? "Missing API key: set params.apiKey" : "Incorrect API key provided",
                  id);
  }
  req.principal = who->name;
  const auto raw_priority = static_cast<std::uint16_t>(params.getPriority());
  if (raw_priority > static_cast<std::uint16_t>(priority_class::training)) {
    return refuse(error_code::invalid_argument, "params.priority is not a known class", id);
  }
  req.priority = static_cast<priority_class>(raw_priority);
  if (!who->may_use(req.priority)) {
    return refuse(error_code::permission_denied,
                  "API key '" + who->name + "' may not use priority class '" +
                      priority_name(req.priority) + "'",
                  id);
  }

  req.model = text(model_id);
  if (req.model.empty()) return refuse(error_code::invalid_argument, "modelId is required", id);
  std::optional<model_info> info;
  for (auto& m : ctx.port.list_models()) {
    if (m.id == req.model) info = m;
  }
  if (!info) {
    return refuse(error_code::unknown_model,
                  "The model '" + req.model + "' does not exist on this node", id);
  }
  const std::uint32_t context = info->context_tokens_max;

  switch (input.which()) {
    case schema::InputData::PROMPT: {
      auto prompt = text(input.getPrompt());
      if (prompt.empty())
        return refuse(error_code::invalid_argument, "inputData.prompt is empty", id);
      req.input = std::move(prompt);
      break;
    }
    case schema::InputData::CHAT: {
      auto chat = input.getChat();
      if (chat.size() == 0)
        return refuse(error_code::invalid_argument, "inputData.chat is empty", id);
      if (chat.size() > ctx.settings.chat_messages_max) {
        return refuse(error_code::invalid_argument,
                      "inputData.chat has more than " +
                          std::to_string(ctx.settings.chat_messages_max) + " messages",
                      id);
      }
      std::vector<chat_message> messages;
      messages.reserve(chat.size());
      for (auto m : chat) {
        auto role = text(m.getRole());
        if (role != "system" && role != "user" && role != "assistant") {
          return refuse(
              error_code::invalid_argument,
              "inputData.chat roles must be system, user or assistant, got '" + role + "'", id);
        }
        messages.push_back(chat_message{std::move(role), text(m.getContent())});
      }
      req.input = std::move(messages);
      break;
    }
    case schema::InputData::TOKENS: {
      auto tokens = input.getTokens();
      if (tokens.size() == 0)
        return refuse(error_code::invalid_argument, "inputData.tokens is empty", id);
      if (tokens.size() > context) {
        auto e = refuse(error_code::invalid_argument,
                        "inputData.tokens has " + std::to_string(tokens.size()) +
                            " tokens, more than the model's context of " + std::to_string(context),
                        id);
        e.reason = std::string(prompt_too_long_reason);
        return e;
      }
      std::vector<std::uint32_t> ids;
      ids.reserve(tokens.size());
      for (auto t : tokens) ids.push_back(t);
      req.input = std::move(ids);
      break;
    }
    default:
      return refuse(error_code::invalid_argument, "inputData holds no input this server knows", id);
  }

  auto& p = req.params;
  p.max_tokens = params.getMaxTokens();
  if (p.max_tokens < 1 || p.max_tokens > context) {
    return refuse(error_code::invalid_argument,
                  "params.maxTokens must be in [1, " + std::to_string(context) +
                      "] (the model's context), got " + std::to_string(p.max_tokens),
                  id);
  }
  p.temperature = params.getTemperature();
  p.top_p = params.getTopP();
  p.top_k = params.getTopK();
  p.repetition_penalty = params.getRepetitionPenalty();
  p.seed = params.getSeed();
  for (const auto& e :
       {check_range("temperature", p.temperature, 0.0F, false, 2.0F),
        check_range("topP", p.top_p, 0.0F, true, 1.0F),
        check_range("repetitionPenalty", p.repetition_penalty, 0.0F, true, 10.0F)}) {
    if (e) {
      auto err = *e;
      err.request_id = id;
      return err;
    }
  }
  auto stops = params.getStop();
  if (stops.size() > ctx.settings.stop_strings_max) {
    return refuse(error_code::invalid_argument,
                  "params.stop may hold at most " + std::to_string(ctx.settings.stop_strings_max) +
                      " strings",
                  id);
  }
  for (auto s : stops) {
    if (s.size() == 0 || s.size() > ctx.settings.stop_bytes_max) {
      return refuse(error_code::invalid_argument,
                    "params.stop strings must be 1.." +
                        std::to_string(ctx.settings.stop_bytes_max) + " bytes",
                    id);
    }
    p.stop.push_back(text(s));
  }
  const std::uint32_t deadline = params.getDeadlineMs();
  if (deadline > deadline_ms_max) {
    return refuse(error_code::invalid_argument, "params.deadlineMs must be at most 3600000", id);
  }
  req.deadline_ms = ctx.effective_deadline_ms(deadline);
  return req;
}

void fill_result(schema::Result::Builder out, const completion& done, const std::string& request_id,
                 const std::string& requested_model) {
  if (auto* err = std::get_if<inference_error>(&done)) {
    auto e = out.initError();
    e.setCode(static_cast<schema::ErrorCode>(err->code));
    // The schema's Error has no field slot; an input refusal names inputData in its message.
    e.setMessage(err->param == "input" ? "inputData: " + err->message : err->message);
    e.setRequestId(err->request_id.empty() ? request_id : err->request_id);
    e.setRetryAfterMs(err->retry_after_ms);
    e.setLeaderAddress(err->leader_address);
    e.setReason(static_cast<schema::ErrorReason>(typed_reason(err->reason)));
    return;
  }
  const auto& r = std::get<final_result>(done);
  auto resp = out.initResponse();
  resp.setRequestId(request_id);
  resp.setModelId(r.served_model.empty() ? requested_model : r.served_model);
  resp.setText(r.text);
  resp.setFinishReason(static_cast<schema::FinishReason>(r.reason));
  auto usage = resp.initUsage();
  usage.setPromptTokens(r.usage.prompt_tokens);
  usage.setCompletionTokens(r.usage.completion_tokens);
  resp.setSite(r.site);
  resp.setEpoch(r.epoch);
}

std::string outcome_label(const completion& done) {
  static const char* names[] = {"invalid_argument",  "unknown_model",     "overloaded",
                                "deadline_exceeded", "not_primary",       "outcome_unknown",
                                "unauthenticated",   "permission_denied", "internal",
                                "cancelled"};
  if (auto* err = std::get_if<inference_error>(&done)) return names[static_cast<int>(err->code)];
  return "ok";
}

// The gateway's own refusal, counted under its reason when it has one (a prompt too long for
// the context), else under its code.
std::string refusal_label(const inference_error& err) {
  return err.reason.empty() ? outcome_label(err) : err.reason;
}

// A refusal the port names a reason for (e.g. a prompt too long for the context) is counted
// with the gateway's own refusals.
void count_port_refusal(gateway_context& ctx, const completion& done) {
  if (auto* err = std::get_if<inference_error>(&done); err && !err->reason.empty())
    ctx.metrics.rpc_rejected(err->reason);
}

// One admitted call in flight: the port call plus its deadline guard.
class rpc_call {
 public:
  rpc_call(gateway_context& ctx, inference_request req)
      : ctx_(ctx),
        request_id_(req.request_id),
        model_(req.model),
        guard_(ctx),
        deadline_at_(ctx.timer.now() + ctx.guard_for(req.deadline_ms)),
        call_(ctx.port, std::move(req), ctx.settings.stream_tokens_max) {}

  const std::string& request_id() const { return request_id_; }
  const std::string& model() const { return model_; }

  kj::Promise<channel_batch> next() {
    auto expired = ctx_.timer.atTime(deadline_at_).then([this]() {
      call_.cancel();
      channel_batch b;
      b.done = refuse(error_code::deadline_exceeded,
                      "The request did not finish within its deadline", request_id_);
      return b;
    });
    return call_.next().exclusiveJoin(kj::mv(expired));
  }

  kj::Promise<completion> completion_only() {
    return next().then([this](channel_batch b) -> kj::Promise<completion> {
      if (b.done) return std::move(*b.done);
      return completion_only();
    });
  }

  void cancel() { call_.cancel(); }

 private:
  gateway_context& ctx_;
  std::string request_id_;
  std::string model_;
  in_flight_guard guard_;
  kj::TimePoint deadline_at_;
  port_call call_;
};

// Sends one stream message, bounded: a client that stops granting flow-control window for
// stream_stall_ms has its stream cancelled.
template <typename T>
kj::Promise<T> bounded(gateway_context& ctx, kj::Promise<T> p) {
  return p.exclusiveJoin(ctx.timer.afterDelay(ctx.settings.stream_stall_ms * kj::MILLISECONDS)
                             .then([&ctx]() -> kj::Promise<T> {
                               ctx.metrics.rpc_rejected("client_stalled");
                               return KJ_EXCEPTION(DISCONNECTED,
                                                   "the client stopped reading the stream");
                             }));
}

kj::Promise<void> send_done(gateway_context& ctx, schema::TokenSink::Client sink,
                            const completion& done, const std::string& request_id,
                            const std::string& model) {
  auto req = sink.doneRequest();
  fill_result(req.initResult(), done, request_id, model);
  return bounded(ctx, req.send().ignoreResult());
}

kj::Promise<completion> pump_stream(gateway_context& ctx, rpc_call& call,
                                    schema::TokenSink::Client sink) {
  return call.next().then(
      [&ctx, &call, sink](channel_batch batch) mutable -> kj::Promise<completion> {
        if (batch.overflowed && !batch.done) {
          call.cancel();
          ctx.metrics.rpc_rejected("stream_overflow");
          return completion(refuse(error_code::cancelled,
                                   "The client did not read the stream fast enough",
                                   call.request_id()));
        }
        kj::Promise<void> sent = kj::READY_NOW;
        for (auto& t : batch.tokens) {
          sent = sent.then([&ctx, sink, token = std::move(t)]() mutable {
            auto req = sink.tokenRequest();
            req.setText(token.text);
            req.setTokenId(token.token_id);
            return bounded(ctx, req.send());
          });
        }
        if (batch.done) {
          return sent.then([done = std::move(*batch.done)]() mutable { return kj::mv(done); });
        }
        return sent.then([&ctx, &call, sink]() mutable { return pump_stream(ctx, call, sink); });
      });
}

}  // namespace

std::variant<inference_request, inference_error> admit_rpc_request(gateway_context& ctx,
                                                                   capnp::Text::Reader model_id,
                                                                   schema::InputData::Reader input,
                                                                   schema::Params::Reader params,
                                                                   bool stream) {
  std::variant<inference_request, inference_error> result = refuse(error_code::internal, "");
  KJ_IF_MAYBE (e, kj::runCatchingExceptions(
                      [&]() { result = admit(ctx, model_id, input, params, stream); })) {
    return refuse(error_code::invalid_argument,
                  std::string("The request could not be read: ") + e->getDescription().cStr());
  }
  return result;
}

capnp::Capability::Server::DispatchCallResult inference_rpc_service::dispatchCall(
    std::uint64_t interface_id, std::uint16_t method_id,
    capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> context) {
  // capnp reports an unknown interface or method as a broken promise, not a throw.
  auto in_flight = kj::heap<rpc_call_scope>(activity_, ctx_.timer);
  auto result = schema::Inference::Server::dispatchCall(interface_id, method_id, context);
  result.promise = result.promise
                       .catch_([this](kj::Exception&& e) -> kj::Promise<void> {
                         if (e.getType() == kj::Exception::Type::UNIMPLEMENTED)
                           ctx_.metrics.rpc_rejected("unimplemented");
                         return kj::mv(e);
                       })
                       .attach(kj::mv(in_flight));
  return result;
}

kj::Promise<void> inference_rpc_service::inference(InferenceContext context) {
  context.allowCancellation();  // the client dropping the call cancels the request
  auto admitted = [&]() {
    std::variant<inference_request, inference_error> r = refuse(error_code::internal, "");
    KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() {
                   auto p = context.getParams();
                   r = admit_rpc_request(ctx_, p.getModelId(), p.getInputData(), p.getParams(),
                                         false);
                 })) {
      r = refuse(error_code::invalid_argument,
                 std::string("The request could not be read: ") + e->getDescription().cStr());
    }
    return r;
  }();
  if (auto* err = std::get_if<inference_error>(&admitted)) {
    ctx_.metrics.rpc_rejected(refusal_label(*err));
    ctx_.metrics.rpc_answered("inference", outcome_label(*err));
    fill_result(context.getResults().initResult(), *err, err->request_id, "");
    return kj::READY_NOW;
  }
  context.releaseParams();
  auto call = kj::heap<rpc_call>(ctx_, std::move(std::get<inference_request>(admitted)));
  auto& ref = *call;
  return ref.completion_only()
      .then([this, context, &ref](completion done) mutable {
        ctx_.metrics.rpc_answered("inference", outcome_label(done));
        count_port_refusal(ctx_, done);
        fill_result(context.getResults().initResult(), done, ref.request_id(), ref.model());
      })
      .attach(kj::mv(call));
}

kj::Promise<void> inference_rpc_service::inferenceStream(InferenceStreamContext context) {
  context.allowCancellation();
  schema::TokenSink::Client sink = nullptr;
  auto admitted = [&]() {
    std::variant<inference_request, inference_error> r = refuse(error_code::internal, "");
    KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() {
                   auto p = context.getParams();
                   sink = p.getSink();
                   r = admit_rpc_request(ctx_, p.getModelId(), p.getInputData(), p.getParams(),
                                         true);
                 })) {
      r = refuse(error_code::invalid_argument,
                 std::string("The request could not be read: ") + e->getDescription().cStr());
    }
    return r;
  }();
  context.releaseParams();
  if (auto* err = std::get_if<inference_error>(&admitted)) {
    ctx_.metrics.rpc_rejected(refusal_label(*err));
    ctx_.metrics.rpc_answered("inferenceStream", outcome_label(*err));
    context.getResults().setRequestId(err->request_id);
    // The refusal travels the same way as any outcome: as the stream's final event.
    return send_done(ctx_, sink, *err, err->request_id, "");
  }
  auto call = kj::heap<rpc_call>(ctx_, std::move(std::get<inference_request>(admitted)));
  auto& ref = *call;
  return pump_stream(ctx_, ref, sink)
      .then([this, context, &ref, sink](completion done) mutable {
        ctx_.metrics.rpc_answered("inferenceStream", outcome_label(done));
        count_port_refusal(ctx_, done);
        context.getResults().setRequestId(ref.request_id());
        return send_done(ctx_, sink, done, ref.request_id(), ref.model());
      })
      .attach(kj::mv(call));
}

}  // namespace bastion::gateway
