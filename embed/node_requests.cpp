// submit(), stream() and cancel() of include/bastion/node.hpp: the embedded API's requests go
// through the same inference_port as the gateway's, so in-process callers get the scheduler's
// classes, deadlines, overload errors and cancellation exactly as network clients do.

#include <bastion/node.hpp>

#include "actors/gateway/gateway_settings.hpp"
#include "actors/gateway/request_id.hpp"
#include "embed/node_impl.hpp"

#include <memory>
#include <type_traits>

namespace bastion {

const char* to_string(finish_reason r) noexcept {
  switch (r) {
    case finish_reason::stop: return "stop";
    case finish_reason::length: return "length";
    case finish_reason::cancelled: return "cancelled";
    case finish_reason::deadline: return "deadline";
  }
  return "unknown";
}

const char* to_string(error_kind k) noexcept {
  switch (k) {
    case error_kind::invalid_argument: return "invalid_argument";
    case error_kind::unknown_model: return "unknown_model";
    case error_kind::overloaded: return "overloaded";
    case error_kind::deadline_exceeded: return "deadline_exceeded";
    case error_kind::not_primary: return "not_primary";
    case error_kind::outcome_unknown: return "outcome_unknown";
    case error_kind::unauthenticated: return "unauthenticated";
    case error_kind::permission_denied: return "permission_denied";
    case error_kind::internal: return "internal";
    case error_kind::cancelled: return "cancelled";
  }
  return "unknown";
}

namespace {

// The public enums are numbered as the port's (and the schema's): checked here, once.
static_assert(static_cast<int>(error_kind::cancelled) ==
              static_cast<int>(gateway::error_code::cancelled));
static_assert(static_cast<int>(finish_reason::deadline) ==
              static_cast<int>(gateway::finish_reason::deadline));
static_assert(static_cast<int>(priority::training) ==
              static_cast<int>(gateway::priority_class::training));

// The gateway's bound (as OpenAI's), so in-process and network callers meet the same limit.
const std::size_t stop_strings_max = gateway::gateway_settings{}.stop_strings_max;

/// A reason to refuse `r` before it reaches the scheduler, or empty.
std::string refusal(const request& r) {
  if (r.model.empty()) return "request.model is empty: name a model of the node's config";
  if (r.prompt.empty() == r.messages.empty())
    return "exactly one of request.prompt and request.messages must be set";
  if (r.max_tokens == 0) return "request.max_tokens must be at least 1";
  if (r.stop.size() > stop_strings_max)
    return "request.stop has " + std::to_string(r.stop.size()) + " strings; at most " +
           std::to_string(stop_strings_max) + " are allowed";
  if (r.deadline.count() < 0) return "request.deadline is negative";
  if (!r.request_id.empty() && !gateway::valid_request_id(r.request_id))
    return "request.request_id '" + r.request_id +
           "' must be 1 to 128 characters from [A-Za-z0-9._:-]";
  return {};
}

gateway::inference_request to_port(const request& r, std::string id, bool stream) {
  gateway::inference_request out;
  out.request_id = std::move(id);
  out.model = r.model;
  if (!r.messages.empty()) {
    std::vector<gateway::chat_message> chat;
    chat.reserve(r.messages.size());
    for (const auto& m : r.messages) chat.push_back({m.role, m.content});
    out.input = std::move(chat);
  } else {
    out.input = r.prompt;
  }
  out.params.max_tokens = r.max_tokens;
  out.params.temperature = r.temperature;
  out.params.top_p = r.top_p;
  out.params.top_k = r.top_k;
  out.params.repetition_penalty = r.repetition_penalty;
  out.params.seed = r.seed;
  out.params.stop = r.stop;
  out.priority = static_cast<gateway::priority_class>(r.cls);
  const auto deadline_ms = r.deadline.count();
  out.deadline_ms = deadline_ms > 0xffffffffLL ? 0xffffffffU : static_cast<std::uint32_t>(deadline_ms);
  out.stream = stream;
  out.principal = "embedded";
  return out;
}

result to_result(const gateway::final_result& f, const std::string& id) {
  result out;
  out.request_id = id;
  out.text = f.text;
  out.reason = static_cast<finish_reason>(f.reason);
  out.prompt_tokens = f.usage.prompt_tokens;
  out.completion_tokens = f.usage.completion_tokens;
  out.served_model = f.served_model;
  out.site = f.site;
  return out;
}

std::exception_ptr to_exception(const gateway::inference_error& e, const std::string& id) {
  return std::make_exception_ptr(request_error(static_cast<error_kind>(e.code), e.message,
                                               e.request_id.empty() ? id : e.request_id,
                                               std::chrono::milliseconds{e.retry_after_ms}));
}

submission start_request(node::impl& n, const request& r, text_callback on_text) {
  auto promise = std::make_shared<std::promise<result>>();
  submission out;
  out.outcome = promise->get_future();
  out.request_id = r.request_id.empty() ? gateway::mint_random_request_id() : r.request_id;
  auto fail = [&](error_kind kind, const std::string& why) {
    promise->set_exception(std::make_exception_ptr(request_error(kind, why, out.request_id)));
    return std::move(out);
  };
  if (n.stopped) return fail(error_kind::cancelled, "node '" + n.options.name + "' is stopped");
  auto* port = n.port();
  if (!port)
    return fail(error_kind::unknown_model, "node '" + n.options.name +
                                               "' serves no models: start it with a config_file");
  if (auto why = refusal(r); !why.empty()) return fail(error_kind::invalid_argument, why);

  gateway::token_callback on_token;
  if (on_text)
    on_token = [cb = std::move(on_text)](gateway::token_event ev) {
      if (!ev.text.empty()) cb(ev.text);
    };
  const bool stream = static_cast<bool>(on_token);
  port->submit(to_port(r, out.request_id, stream), std::move(on_token),
               [promise, id = out.request_id](gateway::completion c) {
                 if (auto* f = std::get_if<gateway::final_result>(&c))
                   promise->set_value(to_result(*f, id));
                 else
                   promise->set_exception(to_exception(std::get<gateway::inference_error>(c), id));
               });
  return out;
}

}  // namespace

submission node::submit(const request& r) { return start_request(*impl_, r, nullptr); }

submission node::stream(const request& r, text_callback on_text) {
  if (!on_text) on_text = [](const std::string&) {};
  return start_request(*impl_, r, std::move(on_text));
}

void node::cancel(const std::string& request_id) {
  if (auto* port = impl_->port(); port && !impl_->stopped) port->cancel(request_id);
}

std::vector<std::string> node::models() const {
  std::vector<std::string> out;
  if (auto* port = impl_->port(); port && !impl_->stopped)
    for (const auto& m : port->list_models()) out.push_back(m.id);
  return out;
}

}  // namespace bastion
