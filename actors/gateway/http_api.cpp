// GCC 12 reports std::variant inside kj::Maybe (a promise's result) as maybe-uninitialized
// after inlining; a known false positive of its middle end, not a bug of ours.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "actors/gateway/http_api.hpp"

#include "actors/gateway/port_call.hpp"

#include <kj/debug.h>

#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace bastion::gateway {

namespace {

constexpr std::uint32_t deadline_header_ms_max = 3600 * 1000;

enum class route_id { healthz, readyz, metrics, models, model, completions, chat, admin, unknown };

struct route {
  route_id id = route_id::unknown;
  const char* name = "unknown";  // the metric label
  kj::HttpMethod method = kj::HttpMethod::GET;
};

route route_for(std::string_view path) {
  if (path == "/healthz") return {route_id::healthz, "healthz", kj::HttpMethod::GET};
  if (path == "/readyz") return {route_id::readyz, "readyz", kj::HttpMethod::GET};
  if (path == "/metrics") return {route_id::metrics, "metrics", kj::HttpMethod::GET};
  if (path == "/v1/models") return {route_id::models, "models", kj::HttpMethod::GET};
  if (path.size() > 11 && path.substr(0, 11) == "/v1/models/") {
    return {route_id::model, "models", kj::HttpMethod::GET};
  }
  if (path == "/v1/completions")
    return {route_id::completions, "completions", kj::HttpMethod::POST};
  if (path == "/v1/chat/completions")
    return {route_id::chat, "chat_completions", kj::HttpMethod::POST};
  // Any method: the admin port decides what each path accepts.
  if (path.size() > 10 && path.substr(0, 10) == "/admin/v1/")
    return {route_id::admin, "admin", kj::HttpMethod::GET};
  return {};
}

std::string sse_event(const std::string& json) { return "data: " + json + "\n\n"; }

// Case-insensitive "Bearer " prefix; the rest, trimmed of blanks, is the key.
std::string_view bearer_key(std::string_view value) {
  constexpr std::string_view scheme = "bearer ";
  if (value.size() < scheme.size()) return {};
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    const char c = value[i];
    const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (lower != scheme[i]) return {};
  }
  value.remove_prefix(scheme.size());
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  return value;
}

std::optional<std::uint64_t> parse_decimal(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

kj::Promise<void> disconnected(const char* why) { return KJ_EXCEPTION(DISCONNECTED, why); }

}  // namespace

kj::Promise<void> when_peer_gone(kj::Timer& timer, kj::AsyncIoStream& connection,
                                 kj::Duration poll_interval) {
  int fd = -1;
  KJ_IF_MAYBE (f, connection.getFd()) {
    fd = *f;
  }
  auto hangup = connection.whenWriteDisconnected();
  if (fd < 0) return hangup;
  auto poll = timer.afterDelay(poll_interval).then([&timer, &connection, poll_interval, fd]() {
    char byte = 0;
    const auto n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    const bool gone =
        n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    if (gone) return kj::Promise<void>(kj::READY_NOW);
    return when_peer_gone(timer, connection, poll_interval);
  });
  return hangup.exclusiveJoin(kj::mv(poll));
}

// One HTTP request from routing to the last byte; owned by the promise handle() returns.
class http_exchange {
 public:
  http_exchange(http_api& api, kj::HttpService::Response& response, kj::AsyncIoStream& connection)
      : api_(api), ctx_(api.ctx_), response_(response), connection_(connection) {}
  ~http_exchange() {
    // A request dropped before its answer was complete (KJ noticed the client leave, or our
    // own watcher did, or its body ended short of its length) is counted once here;
    // port_call's destructor cancels it at the port.
    if ((call_ != nullptr || reading_body_) && !done_ && !abort_counted_) {
      ctx_.metrics.http_rejected("client_gone");
    }
  }

  kj::Promise<void> run(kj::HttpMethod method, kj::StringPtr url, const kj::HttpHeaders& headers,
                        kj::AsyncInputStream& body);

 private:
  struct extra_header {
    kj::HttpHeaderId id;
    std::string value;
  };

  kj::Promise<void> send(unsigned status, const char* status_text, std::string body,
                         const char* content_type, std::vector<extra_header> extra = {});
  kj::Promise<void> send_error(error_code code, std::string message, std::string param = {},
                               std::uint32_t retry_after_ms = 0, std::string leader = {},
                               error_reason reason = error_reason::unspecified);
  kj::Promise<void> send_error(const inference_error& e) {
    if (!e.reason.empty()) ctx_.metrics.http_rejected(e.reason);
    return send_error(e.code, e.message, param_name(e), e.retry_after_ms, e.leader_address,
                      typed_reason(e.reason));
  }
  // The port's name for the field at fault in OpenAI's terms: the input is the completion's
  // "prompt" or the chat's "messages".
  std::string param_name(const inference_error& e) const {
    if (e.param == "input") return kind_ == api_kind::chat ? "messages" : "prompt";
    return e.param;
  }
  kj::Promise<void> write_bounded(kj::AsyncOutputStream& out, std::string data);

  kj::Promise<void> serve_models(bool one, std::string_view path);
  kj::Promise<void> serve_inference(const kj::HttpHeaders& headers, kj::AsyncInputStream& body,
                                    api_kind kind);
  kj::Promise<void> serve_admin(kj::HttpMethod method, std::string_view path,
                                kj::AsyncInputStream& body);
  kj::Promise<std::optional<std::string>> read_body(kj::AsyncInputStream& body,
                                                    std::optional<std::uint64_t> content_length);
  kj::Promise<void> read_more(kj::AsyncInputStream& body, std::string& into);
  kj::Promise<void> run_request(std::string body_text, api_kind kind);
  kj::Promise<channel_batch> next_batch();
  kj::Promise<completion> await_completion();
  kj::Promise<void> answer_unary(completion done);
  kj::Promise<void> start_stream(channel_batch first);
  kj::Promise<void> stream_more(kj::AsyncOutputStream& out);
  std::string stream_events(channel_batch& batch, bool& ended);

  http_api& api_;
  gateway_context& ctx_;
  kj::HttpService::Response& response_;
  kj::AsyncIoStream& connection_;
  std::string route_ = "unknown";
  std::string path_;  // the request's path and query, for redirects
  std::string request_id_;
  std::optional<principal> who_;
  priority_class priority_ = priority_class::interactive;
  std::uint32_t deadline_ms_ = 0;
  bool answered_ = false;
  bool done_ = false;           // the whole answer was written
  bool abort_counted_ = false;  // a specific abort reason was already counted
  bool reading_body_ = false;   // between the request's headers and the end of its body

  // Set once the request reaches the port.
  openai_request request_;
  api_kind kind_ = api_kind::completions;
  response_meta meta_;
  kj::Maybe<kj::Own<in_flight_guard>> in_flight_;
  kj::Maybe<kj::Own<port_call>> call_;
  kj::Maybe<kj::TimePoint> deadline_at_;
  bool role_sent_ = false;
  kj::Maybe<kj::Own<kj::AsyncOutputStream>> stream_out_;
};

kj::Promise<void> http_exchange::send(unsigned status, const char* status_text, std::string body,
                                      const char* content_type, std::vector<extra_header> extra) {
  answered_ = true;
  ctx_.metrics.http_answered(route_, status);
  kj::HttpHeaders headers(api_.table_);
  headers.set(kj::HttpHeaderId::CONTENT_TYPE, kj::heapString(content_type));
  if (!request_id_.empty()) headers.set(api_.request_id_, kj::heapString(request_id_.c_str()));
  for (auto& h : extra) headers.set(h.id, kj::heapString(h.value.c_str()));
  auto out = response_.send(status, status_text, headers, static_cast<std::uint64_t>(body.size()));
  auto& ref = *out;
  return write_bounded(ref, std::move(body)).attach(kj::mv(out));
}

kj::Promise<void> http_exchange::write_bounded(kj::AsyncOutputStream& out, std::string data) {
  if (data.empty()) return kj::READY_NOW;
  auto owned = kj::heap<std::string>(std::move(data));
  auto write = out.write(owned->data(), owned->size()).attach(kj::mv(owned));
  // A client that accepts no bytes for this long is not reading: give up on it rather than let
  // its answer hold memory and a model slot.
  auto stall =
      ctx_.timer.afterDelay(ctx_.settings.stream_stall_ms * kj::MILLISECONDS).then([this]() {
        ctx_.metrics.http_rejected("client_stalled");
        abort_counted_ = true;
        return disconnected("client stopped reading the response");
      });
  return write.exclusiveJoin(kj::mv(stall));
}

kj::Promise<void> http_exchange::send_error(error_code code, std::string message, std::string param,
                                            std::uint32_t retry_after_ms, std::string leader,
                                            error_reason reason) {
  const auto shape = http_shape_for(code, reason);
  std::vector<extra_header> extra;
  if (code == error_code::overloaded) {
    const std::uint32_t seconds = retry_after_ms == 0 ? 1 : (retry_after_ms + 999) / 1000;
    extra.push_back({api_.retry_after_, std::to_string(seconds)});
  }
  if (code == error_code::not_primary && !leader.empty()) {
    extra.push_back({api_.leader_, leader});
    message += " (leader: " + leader + ")";
    // A standby site sends the client to the primary (DESIGN.md §5). 307 keeps the method and
    // the body, so the client repeats the same request, with the same X-Request-Id, there.
    extra.push_back({kj::HttpHeaderId::LOCATION, "http://" + leader + path_});
    return send(307, "Temporary Redirect",
                render_error_body(message, shape.type, param, shape.code), "application/json",
                std::move(extra));
  }
  return send(shape.status, shape.status_text,
              render_error_body(message, shape.type, param, shape.code), "application/json",
              std::move(extra));
}

kj::Promise<void> http_exchange::run(kj::HttpMethod method, kj::StringPtr url,
                                     const kj::HttpHeaders& headers, kj::AsyncInputStream& body) {
  path_.assign(url.cStr(), url.size());
  std::string_view path(url.cStr(), url.size());
  if (const auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  const route r = route_for(path);
  route_ = r.name;

  KJ_IF_MAYBE (given, headers.get(api_.request_id_)) {
    if (!valid_request_id(std::string_view(given->cStr(), given->size()))) {
      ctx_.metrics.http_rejected("bad_request_id");
      request_id_ = ctx_.mint_id();
      return send_error(error_code::invalid_argument,
                        "X-Request-Id must be 1..128 characters from [A-Za-z0-9._:-]",
                        "X-Request-Id");
    }
    request_id_ = std::string(given->cStr(), given->size());
  } else {
    request_id_ = ctx_.mint_id();
  }

  if (r.id == route_id::unknown) {
    ctx_.metrics.http_rejected("unknown_path");
    return send(404, "Not Found",
                render_error_body(std::string("Unknown request URL: ") + kj::str(method).cStr() +
                                      " " + std::string(path),
                                  "invalid_request_error", "", "unknown_url"),
                "application/json");
  }
  if (method != r.method && r.id != route_id::admin) {
    ctx_.metrics.http_rejected("method_not_allowed");
    return send(405, "Method Not Allowed",
                render_error_body(std::string("Method ") + kj::str(method).cStr() +
                                      " is not allowed on " + std::string(path),
                                  "invalid_request_error", "", "method_not_allowed"),
                "application/json", {{api_.allow_, kj::str(r.method).cStr()}});
  }

  switch (r.id) {
    case route_id::healthz:
      return send(200, "OK", "{\"status\":\"alive\"}", "application/json");
    case route_id::readyz: {
      bool ready = false;
      try {
        ready = ctx_.ready ? ctx_.ready() : true;
      } catch (...) {
        ready = false;  // a readiness check that fails says "not ready", it does not crash us
      }
      if (ready) return send(200, "OK", "{\"status\":\"ready\"}", "application/json");
      return send(503, "Service Unavailable", "{\"status\":\"not_ready\"}", "application/json");
    }
    case route_id::metrics:
      return send(200, "OK", ctx_.metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
    default:
      break;
  }

  // Everything under /v1 needs a key.
  std::string_view key;
  KJ_IF_MAYBE (auth, headers.get(api_.authorization_)) {
    key = bearer_key(std::string_view(auth->cStr(), auth->size()));
  }
  who_ = ctx_.keys.authenticate(key);
  if (!who_) {
    ctx_.metrics.http_rejected("unauthenticated");
    return send_error(error_code::unauthenticated,
                      key.empty() ? "Missing API key: send 'Authorization: Bearer <key>'"
                                  : "Incorrect API key provided");
  }
  KJ_IF_MAYBE (p, headers.get(api_.priority_)) {
    const auto parsed = parse_priority(std::string_view(p->cStr(), p->size()));
    if (!parsed) {
      ctx_.metrics.http_rejected("invalid");
      return send_error(error_code::invalid_argument,
                        "X-Bastion-Priority must be production, interactive, batch or training",
                        "X-Bastion-Priority");
    }
    priority_ = *parsed;
  }
  if (!who_->may_use(priority_)) {
    ctx_.metrics.http_rejected("permission_denied");
    return send_error(error_code::permission_denied,
                      std::string("API key '") + who_->name + "' may not use priority class '" +
                          priority_name(priority_) + "'",
                      "X-Bastion-Priority");
  }
  KJ_IF_MAYBE (d, headers.get(api_.deadline_)) {
    const auto ms = parse_decimal(std::string_view(d->cStr(), d->size()));
    if (!ms || *ms == 0 || *ms > deadline_header_ms_max) {
      ctx_.metrics.http_rejected("invalid");
      return send_error(error_code::invalid_argument,
                        "X-Bastion-Deadline-Ms must be an integer in [1, 3600000]",
                        "X-Bastion-Deadline-Ms");
    }
    deadline_ms_ = static_cast<std::uint32_t>(*ms);
  }

  switch (r.id) {
    case route_id::models:
      return serve_models(false, path);
    case route_id::model:
      return serve_models(true, path);
    case route_id::completions:
      return serve_inference(headers, body, api_kind::completions);
    case route_id::chat:
      return serve_inference(headers, body, api_kind::chat);
    case route_id::admin:
      return serve_admin(method, path.substr(10), body);
    default:
      break;
  }
  KJ_UNREACHABLE;
}

kj::Promise<void> http_exchange::serve_models(bool one, std::string_view path) {
  auto models = ctx_.port.list_models();
  if (!one) return send(200, "OK", render_models(models), "application/json");
  const std::string id(path.substr(11));
  for (const auto& m : models) {
    if (m.id == id) {
      auto list = render_models({m});
      // render_models wraps in a list; the single-model shape is the list's only element.
      const auto start = list.find("[{");
      const auto end = list.rfind("}]");
      return send(200, "OK", list.substr(start + 1, end - start), "application/json");
    }
  }
  return send_error(error_code::unknown_model, "The model '" + id + "' does not exist", "model");
}

kj::Promise<void> http_exchange::serve_inference(const kj::HttpHeaders& headers,
                                                 kj::AsyncInputStream& body, api_kind kind) {
  kind_ = kind;
  std::optional<std::uint64_t> content_length;
  KJ_IF_MAYBE (cl, headers.get(kj::HttpHeaderId::CONTENT_LENGTH)) {
    content_length = parse_decimal(std::string_view(cl->cStr(), cl->size()));
  }
  if (content_length && *content_length > ctx_.settings.body_bytes_max) {
    // Refused before reading a byte of it; KJ then closes the connection if the client keeps
    // sending.
    ctx_.metrics.http_rejected("body_too_large");
    return send(413, "Payload Too Large",
                render_error_body("Request body of " + std::to_string(*content_length) +
                                      " bytes exceeds the limit of " +
                                      std::to_string(ctx_.settings.body_bytes_max) + " bytes",
                                  "invalid_request_error", "", "body_too_large"),
                "application/json");
  }
  reading_body_ = true;
  return read_body(body, content_length)
      .then([this, kind](std::optional<std::string> text) -> kj::Promise<void> {
        reading_body_ = false;
        if (!text) {
          if (answered_) return kj::READY_NOW;
          ctx_.metrics.http_rejected("body_too_large");
          return send(413, "Payload Too Large",
                      render_error_body("Request body exceeds the limit of " +
                                            std::to_string(ctx_.settings.body_bytes_max) + " bytes",
                                        "invalid_request_error", "", "body_too_large"),
                      "application/json");
        }
        return run_request(std::move(*text), kind);
      });
}

kj::Promise<void> http_exchange::serve_admin(kj::HttpMethod method, std::string_view path,
                                             kj::AsyncInputStream& body) {
  if (ctx_.admin == nullptr) {
    ctx_.metrics.http_rejected("unknown_path");
    return send(404, "Not Found",
                render_error_body("this node has no admin endpoints (no cluster section)",
                                  "invalid_request_error", "", "unknown_url"),
                "application/json");
  }
  if (!who_->admin) {
    ctx_.metrics.http_rejected("permission_denied");
    return send_error(error_code::permission_denied,
                      "API key '" + who_->name + "' is not an admin key (admin = true)");
  }
  std::string method_name = kj::str(method).cStr();
  std::string sub_path(path);
  // Admin bodies are small JSON; the gateway's body limit and idle timeout bound them.
  return read_body(body, std::nullopt)
      .then([this, method_name = std::move(method_name),
             sub_path = std::move(sub_path)](std::optional<std::string> text) -> kj::Promise<void> {
        if (!text) {
          ctx_.metrics.http_rejected("body_too_large");
          return send_error(error_code::invalid_argument, "admin request body too large");
        }
        // The port answers from another thread, possibly after this exchange gave up on it:
        // the slot is emptied on timeout so a late answer goes nowhere.
        struct slot {
          std::mutex mutex;
          kj::Own<kj::CrossThreadPromiseFulfiller<admin_reply>> fulfiller;
        };
        auto paf = kj::newPromiseAndCrossThreadFulfiller<admin_reply>();
        auto shared = std::make_shared<slot>();
        shared->fulfiller = kj::mv(paf.fulfiller);
        ctx_.admin->handle(method_name, sub_path, *text, who_->name, [shared](admin_reply r) {
          std::lock_guard<std::mutex> lock(shared->mutex);
          if (shared->fulfiller.get() != nullptr) shared->fulfiller->fulfill(kj::mv(r));
          shared->fulfiller = nullptr;
        });
        auto timeout =
            ctx_.timer.afterDelay(ctx_.settings.admin_timeout_ms * kj::MILLISECONDS)
                .then([shared]() {
                  std::lock_guard<std::mutex> lock(shared->mutex);
                  shared->fulfiller = nullptr;
                  return admin_reply{504, render_error_body("the node did not answer in time",
                                                            "server_error", "", "timeout")};
                });
        return paf.promise.exclusiveJoin(kj::mv(timeout)).then([this](admin_reply r) {
          const char* reason = r.status < 300   ? "OK"
                               : r.status < 500 ? "Bad Request"
                                                : "Server Error";
          return send(r.status, reason, std::move(r.json), "application/json");
        });
      });
}

kj::Promise<std::optional<std::string>> http_exchange::read_body(
    kj::AsyncInputStream& body, std::optional<std::uint64_t> content_length) {
  auto text = kj::heap<std::string>();
  text->reserve(content_length.value_or(4096));
  auto& ref = *text;
  return read_more(body, ref).then(
      [this, text = kj::mv(text)]() mutable -> std::optional<std::string> {
        if (text->size() > ctx_.settings.body_bytes_max) return std::nullopt;
        return std::move(*text);
      });
}

kj::Promise<void> http_exchange::read_more(kj::AsyncInputStream& body, std::string& into) {
  // Reads until EOF or one byte past the limit; every read must make progress within the idle
  // timeout, so a client trickling its body cannot hold the connection forever. Each step's
  // timeout is resolved before the next step starts, so exactly one timeout can ever fire.
  enum class step { more, done, timed_out };
  constexpr std::size_t chunk = 16384;
  const std::size_t old = into.size();
  into.resize(old + chunk);
  auto read = body.tryRead(&into[old], 1, chunk).then([this, &into, old](std::size_t n) {
    into.resize(old + n);
    return (n == 0 || into.size() > ctx_.settings.body_bytes_max) ? step::done : step::more;
  });
  auto timeout = ctx_.timer.afterDelay(ctx_.settings.idle_timeout_ms * kj::MILLISECONDS).then([]() {
    return step::timed_out;
  });
  return read.exclusiveJoin(kj::mv(timeout))
      .then([this, &body, &into](step s) -> kj::Promise<void> {
        if (s == step::more) return read_more(body, into);
        if (s == step::done) return kj::READY_NOW;
        ctx_.metrics.http_rejected("body_timeout");
        abort_counted_ = true;
        return send(408, "Request Timeout",
                    render_error_body("The request body did not arrive within " +
                                          std::to_string(ctx_.settings.idle_timeout_ms) + " ms",
                                      "invalid_request_error", "", "request_timeout"),
                    "application/json")
            .then([]() { return disconnected("request body timed out"); });
      });
}

kj::Promise<void> http_exchange::run_request(std::string body_text, api_kind kind) {
  parse_limits limits;
  limits.chat_messages_max = ctx_.settings.chat_messages_max;
  limits.stop_strings_max = ctx_.settings.stop_strings_max;
  limits.stop_bytes_max = ctx_.settings.stop_bytes_max;
  auto parsed = parse_openai_request(kind, body_text, limits, ctx_.port.list_models());
  if (auto* err = std::get_if<client_error>(&parsed)) {
    // A refusal with a typed reason (a prompt too long for the context) is counted under it,
    // as the port's own refusals are.
    std::string why = err->code == error_code::unknown_model ? "unknown_model" : "invalid";
    if (err->reason != error_reason::unspecified) why = reason_text(err->reason);
    ctx_.metrics.http_rejected(why);
    return send_error(err->code, err->message, err->param, 0, {}, err->reason);
  }
  request_ = std::move(std::get<openai_request>(parsed));
  meta_ = response_meta{request_id_, ctx_.unix_now_s(), request_.model};

  inference_request req;
  req.request_id = request_id_;
  req.model = request_.model;
  req.input = request_.input;
  req.params = request_.params;
  req.priority = priority_;
  req.deadline_ms = ctx_.effective_deadline_ms(deadline_ms_);
  req.stream = request_.stream;
  req.principal = who_->name;
  deadline_at_ = ctx_.timer.now() + ctx_.guard_for(req.deadline_ms);

  in_flight_ = kj::heap<in_flight_guard>(ctx_);
  call_ = kj::heap<port_call>(ctx_.port, std::move(req), ctx_.settings.stream_tokens_max);

  kj::Promise<void> work = nullptr;
  if (request_.stream) {
    work = next_batch().then([this](channel_batch first) { return start_stream(kj::mv(first)); });
  } else {
    work =
        await_completion().then([this](completion done) { return answer_unary(std::move(done)); });
  }
  auto gone =
      when_peer_gone(ctx_.timer, connection_, ctx_.settings.disconnect_check_ms * kj::MILLISECONDS)
          .then([]() { return disconnected("the client closed the connection"); });
  return work.then([this]() { done_ = true; }).exclusiveJoin(kj::mv(gone));
}

kj::Promise<channel_batch> http_exchange::next_batch() {
  auto& call = *KJ_ASSERT_NONNULL(call_);
  auto at = KJ_ASSERT_NONNULL(deadline_at_);
  // The port owes us a completion by the deadline; past it (plus grace) we answer ourselves.
  auto expired = ctx_.timer.atTime(at).then([this]() {
    KJ_IF_MAYBE (c, call_) {
      c->get()->cancel();
    }
    channel_batch b;
    b.done = inference_error{error_code::deadline_exceeded,
                             "The request did not finish within its deadline",
                             request_id_,
                             0,
                             {}};
    return b;
  });
  return call.next().exclusiveJoin(kj::mv(expired));
}

kj::Promise<completion> http_exchange::await_completion() {
  return next_batch().then([this](channel_batch b) -> kj::Promise<completion> {
    if (b.done) return std::move(*b.done);
    return await_completion();  // unary requests drop tokens at the channel; nothing to keep
  });
}

kj::Promise<void> http_exchange::answer_unary(completion done) {
  if (auto* err = std::get_if<inference_error>(&done)) return send_error(*err);
  auto& result = std::get<final_result>(done);
  if (result.reason == finish_reason::deadline) {
    return send_error(error_code::deadline_exceeded,
                      "The request did not finish within its deadline");
  }
  if (result.reason == finish_reason::cancelled) {
    return send_error(error_code::cancelled, "The request was cancelled by the server");
  }
  response_meta meta = meta_;
  if (!result.served_model.empty()) meta.model = result.served_model;
  return send(200, "OK", render_response(kind_, meta, result), "application/json");
}

std::string http_exchange::stream_events(channel_batch& batch, bool& ended) {
  std::string data;
  for (auto& t : batch.tokens) {
    if (t.text.empty()) continue;
    data += sse_event(render_text_chunk(kind_, meta_, t.text, !role_sent_));
    role_sent_ = true;
  }
  auto error_event = [&](error_code code, const std::string& message, const std::string& param = {},
                         error_reason reason = error_reason::unspecified) {
    const auto shape = http_shape_for(code, reason);
    data += sse_event(render_error_body(message, shape.type, param, shape.code));
    ended = true;
  };
  if (batch.overflowed && !batch.done) {
    KJ_IF_MAYBE (c, call_) {
      c->get()->cancel();
    }
    ctx_.metrics.http_rejected("stream_overflow");
    error_event(error_code::cancelled, "The client did not read the stream fast enough");
    return data;
  }
  if (!batch.done) return data;
  ended = true;
  if (auto* err = std::get_if<inference_error>(&*batch.done)) {
    if (!err->reason.empty()) ctx_.metrics.http_rejected(err->reason);
    error_event(err->code, err->message, param_name(*err), typed_reason(err->reason));
    return data;
  }
  auto& result = std::get<final_result>(*batch.done);
  if (result.reason == finish_reason::deadline) {
    error_event(error_code::deadline_exceeded, "The request did not finish within its deadline");
    return data;
  }
  if (result.reason == finish_reason::cancelled) {
    error_event(error_code::cancelled, "The request was cancelled by the server");
    return data;
  }
  if (!result.served_model.empty()) meta_.model = result.served_model;
  if (kind_ == api_kind::chat && !role_sent_) {
    data += sse_event(render_text_chunk(kind_, meta_, "", true));
    role_sent_ = true;
  }
  // The closing chunks name the releasing site and epoch, as the unary answer does, so a
  // streaming client can tell a replay from the journal too.
  const auto fingerprint = system_fingerprint_of(result);
  if (request_.include_usage) {
    // OpenAI's shape under stream_options.include_usage: finish chunk, then a usage chunk.
    data += sse_event(render_finish_chunk(kind_, meta_, result.reason, nullptr, fingerprint));
    data += sse_event(render_usage_chunk(kind_, meta_, result.usage, fingerprint));
  } else {
    // Bastion's final event carries finish reason and usage together (DESIGN.md §4).
    data += sse_event(render_finish_chunk(kind_, meta_, result.reason, &result.usage, fingerprint));
  }
  data += "data: [DONE]\n\n";
  return data;
}

kj::Promise<void> http_exchange::start_stream(channel_batch first) {
  // Until the first event the answer can still be a plain HTTP error (overloaded -> 429 ...).
  if (first.done && first.tokens.empty()) {
    if (auto* err = std::get_if<inference_error>(&*first.done)) return send_error(*err);
  }
  answered_ = true;
  ctx_.metrics.http_answered(route_, 200);
  kj::HttpHeaders headers(api_.table_);
  headers.set(kj::HttpHeaderId::CONTENT_TYPE, "text/event-stream; charset=utf-8");
  headers.set(api_.cache_control_, "no-cache");
  headers.set(api_.request_id_, kj::heapString(request_id_.c_str()));
  auto out = response_.send(200, "OK", headers);
  auto& ref = *out;
  stream_out_ = kj::mv(out);
  bool ended = false;
  auto data = stream_events(first, ended);
  auto written = write_bounded(ref, std::move(data));
  if (ended) return written;
  return written.then([this, &ref]() { return stream_more(ref); });
}

kj::Promise<void> http_exchange::stream_more(kj::AsyncOutputStream& out) {
  return next_batch().then([this, &out](channel_batch batch) {
    bool ended = false;
    auto written = write_bounded(out, stream_events(batch, ended));
    if (ended) return written;
    return written.then([this, &out]() { return stream_more(out); });
  });
}

http_connection_service::http_connection_service(http_api& api, kj::AsyncIoStream& connection)
    : api_(api), connection_(connection), opened_(api.context().timer.now()) {}

http_connection_service::~http_connection_service() {
  auto& ctx = api_.context();
  if (requests_ == 0 &&
      ctx.timer.now() - opened_ >= ctx.settings.idle_timeout_ms * kj::MILLISECONDS) {
    ctx.metrics.http_rejected("header_timeout");
  }
}

http_api::http_api(gateway_context& ctx, kj::HttpHeaderTable::Builder& headers)
    : ctx_(ctx),
      table_(headers.getFutureTable()),
      authorization_(headers.add("Authorization")),
      request_id_(headers.add("X-Request-Id")),
      priority_(headers.add("X-Bastion-Priority")),
      deadline_(headers.add("X-Bastion-Deadline-Ms")),
      retry_after_(headers.add("Retry-After")),
      leader_(headers.add("X-Bastion-Leader")),
      allow_(headers.add("Allow")),
      cache_control_(headers.add("Cache-Control")) {}

kj::Promise<void> http_api::handle(kj::HttpMethod method, kj::StringPtr url,
                                   const kj::HttpHeaders& headers, kj::AsyncInputStream& body,
                                   kj::HttpService::Response& response,
                                   kj::AsyncIoStream& connection) {
  auto exchange = kj::heap<http_exchange>(*this, response, connection);
  auto& ref = *exchange;
  return ref.run(method, url, headers, body).attach(kj::mv(exchange));
}

kj::Promise<void> http_api::answer_protocol_error(kj::StringPtr description,
                                                  kj::HttpService::Response& response) {
  ctx_.metrics.http_rejected("bad_http");
  ctx_.metrics.http_answered("unknown", 400);
  auto body = render_error_body(std::string("Malformed HTTP request: ") + description.cStr(),
                                "invalid_request_error", "", "bad_http");
  kj::HttpHeaders headers(table_);
  headers.set(kj::HttpHeaderId::CONTENT_TYPE, "application/json");
  auto out = response.send(400, "Bad Request", headers, static_cast<std::uint64_t>(body.size()));
  auto owned = kj::heap<std::string>(std::move(body));
  auto& ref = *out;
  return ref.write(owned->data(), owned->size()).attach(kj::mv(out), kj::mv(owned));
}

kj::Promise<void> http_api::answer_internal_error(const kj::Exception& e,
                                                  kj::Maybe<kj::HttpService::Response&> response) {
  if (e.getType() == kj::Exception::Type::DISCONNECTED) return kj::READY_NOW;  // nobody to tell
  // KJ 0.9.2 reports oversized request headers (over its 128 KiB buffer) as a plain failure
  // rather than a protocol error; it is the client's fault, so answer it as such.
  const std::string_view description(e.getDescription().cStr(), e.getDescription().size());
  const bool headers_too_large = description.find("headers too large") != std::string_view::npos;
  unsigned status = 500;
  const char* status_text = "Internal Server Error";
  std::string body = render_error_body("Internal error", "server_error", "", "internal");
  if (headers_too_large) {
    status = 431;
    status_text = "Request Header Fields Too Large";
    body = render_error_body("Request headers exceed the server's limit", "invalid_request_error",
                             "", "headers_too_large");
    ctx_.metrics.http_rejected("headers_too_large");
  } else {
    KJ_LOG(ERROR, "gateway: HTTP request failed", e);
    ctx_.metrics.http_rejected("internal");
  }
  KJ_IF_MAYBE (r, response) {
    ctx_.metrics.http_answered("unknown", status);
    kj::HttpHeaders headers(table_);
    headers.set(kj::HttpHeaderId::CONTENT_TYPE, "application/json");
    auto out = r->send(status, status_text, headers, static_cast<std::uint64_t>(body.size()));
    auto owned = kj::heap<std::string>(std::move(body));
    auto& ref = *out;
    return ref.write(owned->data(), owned->size()).attach(kj::mv(out), kj::mv(owned));
  }
  return kj::READY_NOW;
}

kj::Promise<void> http_error_handler::handleClientProtocolError(
    kj::HttpHeaders::ProtocolError protocolError, kj::HttpService::Response& response) {
  return api_.answer_protocol_error(protocolError.description, response);
}

kj::Promise<void> http_error_handler::handleApplicationError(
    kj::Exception exception, kj::Maybe<kj::HttpService::Response&> response) {
  return api_.answer_internal_error(exception, response);
}

}  // namespace bastion::gateway
