// The client's call loop: one attempt at a time on its own connection, each attempt's outcome
// classified into a verdict (done, redirect, retry elsewhere, retry here later, fail), every
// loop bounded by the options (attempts, redirects, backoff, Retry-After, deadline).
#include <bastion/client.hpp>
#include <bastion/request_id.hpp>

#include "client/http_transport.hpp"
#include "client/openai_wire.hpp"
#include "client/site_address.hpp"

#include <algorithm>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <utility>

namespace bastion {

using namespace client_detail;

namespace {

std::string mint_random_id() {
  std::random_device rd;  // the kernel's CSPRNG on Linux
  static const char* digits = "0123456789abcdef";
  std::string id;
  id.reserve(32);
  for (int i = 0; i < 4; ++i) {
    auto word = static_cast<std::uint32_t>(rd());
    for (int k = 0; k < 8; ++k) {
      id.push_back(digits[word & 0xF]);
      word >>= 4;
    }
  }
  return id;
}

bool has_line_break(const std::string& s) {
  return s.find_first_of("\r\n") != std::string::npos || s.find('\0') != std::string::npos;
}

enum class verdict { done, redirect, retry_next, retry_same, fail };

struct attempt_result {
  verdict what = verdict::fail;
  client_result result;
  client_error error;  // fail: the call's error; retry_*: the failure, should it be the last
  std::string location;
  std::chrono::milliseconds wait{0};  // retry_same: the gateway's Retry-After (0: none)
  bool delivered_text = false;        // stream: on_text saw text in this attempt
  std::string log;                    // what happened, for the trace
};

attempt_result failed(client_error_kind kind, std::string message, std::string code, int status = 0,
                      std::string param = {}) {
  attempt_result a;
  a.what = verdict::fail;
  a.error.kind = kind;
  a.error.message = std::move(message);
  a.error.code = std::move(code);
  a.error.http_status = status;
  a.error.param = std::move(param);
  a.log = a.error.code.empty() ? a.error.message : a.error.code;
  return a;
}

attempt_result retry(verdict v, client_error_kind kind, std::string message, std::string code,
                     int status = 0) {
  auto a = failed(kind, std::move(message), std::move(code), status);
  a.what = v;
  return a;
}

// A gateway error code (the body's error.code or a stream error event's) as the client's
// verdict: retry elsewhere, retry here, or which typed error.
attempt_result classify_code(const std::string& where, int status, const wire_error& e) {
  std::string message = where + ": " + (status != 0 ? std::to_string(status) + " " : "") +
                        (e.code.empty() ? "error" : e.code) +
                        (e.message.empty() ? "" : ": " + e.message);
  const auto& c = e.code;
  if (c == "not_primary" || c == "outcome_unknown" || c == "cancelled")
    return retry(verdict::retry_next, client_error_kind::unavailable, message, c, status);
  if (c == "overloaded")
    return retry(verdict::retry_same, client_error_kind::overloaded, message, c, status);
  if (c == "deadline_exceeded")
    return failed(client_error_kind::deadline_exceeded, message, c, status);
  if (c == "invalid_argument")
    return failed(client_error_kind::invalid_argument, message, c, status, e.param);
  if (c == "model_not_found")
    return failed(client_error_kind::unknown_model, message, c, status, e.param);
  if (c == "invalid_api_key") return failed(client_error_kind::unauthenticated, message, c, status);
  if (c == "permission_denied")
    return failed(client_error_kind::permission_denied, message, c, status, e.param);
  return failed(client_error_kind::server_error, message, c.empty() ? "server_error" : c, status,
                e.param);
}

// A non-200, non-redirect HTTP answer.
attempt_result classify_status(const std::string& where, const response_head& head,
                               const std::string& body) {
  const auto parsed = parse_error_body(body);
  wire_error e = parsed.value_or(wire_error{});
  const int s = head.status;
  if (s == 429) {
    if (e.code.empty()) e.code = "overloaded";
    auto a = classify_code(where, s, e);
    a.what = verdict::retry_same;
    a.error.kind = client_error_kind::overloaded;
    // Retry-After in seconds (the gateway's form); an HTTP date or garbage falls back to the
    // client's own backoff.
    const auto ra = head.header("retry-after");
    if (!ra.empty() && ra.size() <= 6 && ra.find_first_not_of("0123456789") == std::string::npos)
      a.wait = std::chrono::seconds(std::stoul(ra));
    a.error.retry_after = a.wait;
    return a;
  }
  if (s == 503) {
    if (e.code.empty()) e.code = "unavailable";
    auto a = classify_code(where, s, e);
    if (a.what == verdict::fail) {  // any 503 is worth another site
      a.what = verdict::retry_next;
      a.error.kind = client_error_kind::unavailable;
    }
    return a;
  }
  if (s == 504) {
    if (e.code.empty()) e.code = "deadline_exceeded";
    return classify_code(where, s, e);
  }
  if (s >= 400 && s < 500) {
    auto a = classify_code(where, s, e);
    if (s == 400 && a.error.kind == client_error_kind::server_error)
      a.error.kind = client_error_kind::invalid_argument;
    if (s == 401) a.error.kind = client_error_kind::unauthenticated;
    if (s == 403) a.error.kind = client_error_kind::permission_denied;
    if (s == 404 && e.code != "model_not_found") a.error.kind = client_error_kind::rejected;
    if (s > 404) a.error.kind = client_error_kind::rejected;  // 429 returned above
    if (a.what != verdict::fail) {  // a 4xx is the client's fault whatever its body says
      a.what = verdict::fail;
      a.error.kind = client_error_kind::rejected;
    }
    return a;
  }
  if (s >= 500) {
    auto a = classify_code(where, s, e);
    a.what = verdict::fail;
    a.error.kind = client_error_kind::server_error;
    return a;
  }
  return failed(client_error_kind::bad_response,
                where + ": unexpected HTTP status " + std::to_string(s), "unexpected_status", s);
}

attempt_result from_transport(const transport_error& e) {
  const std::string code = code_of(e.kind());
  switch (e.kind()) {
    case transport_failure::refused:
    case transport_failure::unreachable:
    case transport_failure::lost:
    case transport_failure::idle:
      return retry(verdict::retry_next, client_error_kind::unavailable, e.what(), code);
    case transport_failure::deadline:
      return failed(client_error_kind::deadline_exceeded, e.what(), code);
    case transport_failure::malformed:
      return failed(client_error_kind::bad_response, e.what(), code);
    case transport_failure::too_large:
      return failed(client_error_kind::response_too_large, e.what(), code);
  }
  return failed(client_error_kind::bad_response, e.what(), code);
}

}  // namespace

const char* to_string(client_error_kind k) noexcept {
  switch (k) {
    case client_error_kind::invalid_argument:
      return "invalid_argument";
    case client_error_kind::unknown_model:
      return "unknown_model";
    case client_error_kind::unauthenticated:
      return "unauthenticated";
    case client_error_kind::permission_denied:
      return "permission_denied";
    case client_error_kind::rejected:
      return "rejected";
    case client_error_kind::server_error:
      return "server_error";
    case client_error_kind::unavailable:
      return "unavailable";
    case client_error_kind::overloaded:
      return "overloaded";
    case client_error_kind::deadline_exceeded:
      return "deadline_exceeded";
    case client_error_kind::too_many_redirects:
      return "too_many_redirects";
    case client_error_kind::bad_redirect:
      return "bad_redirect";
    case client_error_kind::bad_response:
      return "bad_response";
    case client_error_kind::response_too_large:
      return "response_too_large";
  }
  return "unknown";
}

struct client::impl {
  explicit impl(client_options o) : opts(std::move(o)) {
    if (opts.sites.empty()) throw std::invalid_argument("client_options.sites: no site given");
    for (std::size_t i = 0; i < opts.sites.size(); ++i) {
      auto parsed = parse_site_address(opts.sites[i]);
      if (auto* why = std::get_if<std::string>(&parsed)) {
        throw std::invalid_argument("client_options.sites[" + std::to_string(i) + "]: " + *why);
      }
      sites.push_back(std::get<site_address>(parsed));
    }
    if (opts.attempts_max == 0)
      throw std::invalid_argument("client_options.attempts_max: must be at least 1");
    if (opts.backoff_initial.count() < 0 || opts.backoff_initial > opts.backoff_max)
      throw std::invalid_argument(
          "client_options.backoff_initial: must be in [0, backoff_max] (it is " +
          std::to_string(opts.backoff_initial.count()) + " ms)");
    if (opts.deadline.count() <= 0)
      throw std::invalid_argument("client_options.deadline: must be positive");
    if (opts.connect_timeout.count() <= 0 || opts.idle_timeout.count() <= 0)
      throw std::invalid_argument(
          "client_options.connect_timeout / idle_timeout: must be positive");
    if (opts.response_bytes_max == 0 || opts.header_bytes_max == 0)
      throw std::invalid_argument(
          "client_options.response_bytes_max / header_bytes_max: must be positive");
    if (has_line_break(opts.api_key))
      throw std::invalid_argument("client_options.api_key: contains a line break");
    if (!opts.mint_request_id) opts.mint_request_id = mint_random_id;
    if (!opts.sleep)
      opts.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
    preferred = sites.front();
  }

  client_outcome call(const request& r, const stream_handlers* handlers);

  // What every attempt of a call sends but the request line and Host (a redirect may change
  // the path): rendered once per call, so each retry or redirect re-sends the same bytes.
  struct rendered_request {
    std::string headers;  // after Host, through the blank line
    std::string body;
    bool stream = false;
    bool chat = false;
  };
  rendered_request render(const request& r, const std::string& id, bool stream) const;

  attempt_result attempt(const site_address& to, const std::string& path,
                         const rendered_request& req, const stream_handlers* handlers,
                         steady::time_point deadline);
  attempt_result read_stream(http_connection& conn, const std::string& where, bool chat,
                             const stream_handlers& handlers);

  // The configured site after `origin` (the site a redirect chain started at), skipping
  // `failed` (where the chain ended in a failure) when another site is left: during a failover
  // each standby is asked in turn, and a dead leader they name is reached only through them.
  site_address next_after(const site_address& origin, const site_address& failed) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = std::find(sites.begin(), sites.end(), origin);
    if (it != sites.end()) rotation = static_cast<std::size_t>(it - sites.begin());
    rotation = (rotation + 1) % sites.size();
    if (sites[rotation] == failed && sites.size() > 1) rotation = (rotation + 1) % sites.size();
    preferred = sites[rotation];
    return preferred;
  }
  void remember(const site_address& a) {
    std::lock_guard<std::mutex> lock(mutex);
    preferred = a;
  }
  site_address first() const {
    std::lock_guard<std::mutex> lock(mutex);
    return preferred;
  }

  client_options opts;
  std::vector<site_address> sites;
  mutable std::mutex mutex;
  site_address preferred;    // guarded by mutex
  std::size_t rotation = 0;  // guarded by mutex: the configured site last moved to
};

client::impl::rendered_request client::impl::render(const request& r, const std::string& id,
                                                    bool stream) const {
  rendered_request out;
  out.body = render_request_body(r, stream);
  out.stream = stream;
  out.chat = !r.messages.empty();
  auto& h = out.headers;
  if (!opts.api_key.empty()) h += "Authorization: Bearer " + opts.api_key + "\r\n";
  h += "Content-Type: application/json\r\n";
  h += stream ? "Accept: text/event-stream\r\n" : "Accept: application/json\r\n";
  h += "X-Request-Id: " + id + "\r\n";
  h += "X-Bastion-Priority: " + priority_header_value(r.cls) + "\r\n";
  if (r.deadline.count() > 0)
    h += "X-Bastion-Deadline-Ms: " + std::to_string(r.deadline.count()) + "\r\n";
  h += "Content-Length: " + std::to_string(out.body.size()) + "\r\nConnection: close\r\n\r\n";
  return out;
}

attempt_result client::impl::attempt(const site_address& to, const std::string& path,
                                     const rendered_request& req, const stream_handlers* handlers,
                                     steady::time_point deadline) {
  const std::string where = to.to_string();

  transport_limits limits;
  limits.connect_timeout = opts.connect_timeout;
  limits.idle_timeout = opts.idle_timeout;
  limits.header_bytes_max = opts.header_bytes_max;
  limits.body_bytes_max = opts.response_bytes_max;
  limits.deadline = deadline;
  http_connection conn(limits);
  try {
    conn.open(to);
    conn.send("POST " + path + " HTTP/1.1\r\nHost: " + where + "\r\n" + req.headers + req.body);
    const auto answer = conn.read_head();
    if (answer.status == 307 || answer.status == 308) {
      attempt_result a;
      a.what = verdict::redirect;
      a.location = answer.header("location");
      a.log = std::to_string(answer.status) + " to " + a.location.substr(0, 120);
      return a;  // the body (an explanation) is not needed
    }
    if (answer.status == 200 && req.stream) {
      return read_stream(conn, where, req.chat, *handlers);
    }
    std::string text;
    while (conn.read_body(text)) {
    }
    if (answer.status != 200) {
      auto a = classify_status(where, answer, text);
      return a;
    }
    auto parsed = parse_unary_answer(text, req.chat);
    if (auto* why = std::get_if<std::string>(&parsed))
      return failed(client_error_kind::bad_response, where + ": " + *why, "bad_answer", 200);
    attempt_result a;
    a.what = verdict::done;
    a.result = std::get<client_result>(std::move(parsed));
    a.log = "200";
    return a;
  } catch (const transport_error& e) {
    return from_transport(e);
  }
}

attempt_result client::impl::read_stream(http_connection& conn, const std::string& where, bool chat,
                                         const stream_handlers& handlers) {
  attempt_result a;
  sse_splitter splitter(opts.response_bytes_max);
  bool finished = false;
  std::size_t pieces = 0;
  auto ended_early = [&](const std::string& why, const std::string& code) {
    auto r = retry(verdict::retry_next, client_error_kind::unavailable,
                   where + ": the stream ended before its final event (" + why + ", " +
                       std::to_string(pieces) + " pieces delivered)",
                   code, 200);
    r.delivered_text = a.delivered_text;
    return r;
  };
  std::string bytes;
  while (true) {
    bytes.clear();
    bool more = false;
    try {
      more = conn.read_body(bytes);
    } catch (const transport_error& e) {
      // The final event is what releases the answer (DESIGN.md §4): once it arrived, losing
      // the connection before [DONE] loses nothing.
      if (finished) break;
      auto r = from_transport(e);
      if (r.what == verdict::retry_next) return ended_early(e.what(), "stream_truncated");
      r.delivered_text = a.delivered_text;
      return r;
    }
    if (!more) break;
    auto events = splitter.feed(bytes);
    if (auto* why = std::get_if<std::string>(&events)) {
      auto r = failed(client_error_kind::response_too_large, where + ": " + *why,
                      "response_too_large", 200);
      r.delivered_text = a.delivered_text;
      return r;
    }
    for (auto& data : std::get<std::vector<std::string>>(events)) {
      if (data == "[DONE]") {
        if (!finished) return ended_early("[DONE] without a finish event", "stream_truncated");
        a.what = verdict::done;
        a.log = "200 stream, " + std::to_string(pieces) + " pieces";
        return a;
      }
      auto parsed = parse_stream_chunk(data, chat);
      if (auto* why = std::get_if<std::string>(&parsed)) {
        auto r = failed(client_error_kind::bad_response, where + ": " + *why, "bad_event", 200);
        r.delivered_text = a.delivered_text;
        return r;
      }
      auto& chunk = std::get<stream_chunk>(parsed);
      if (chunk.error) {
        auto r = classify_code(where, 0, *chunk.error);
        r.error.http_status = 200;
        r.delivered_text = a.delivered_text;
        return r;
      }
      if (!chunk.text.empty()) {
        ++pieces;
        a.result.text += chunk.text;
        a.delivered_text = true;
        if (handlers.on_text) handlers.on_text(chunk.text);
      }
      if (!chunk.model.empty()) a.result.served_model = chunk.model;
      if (!chunk.fingerprint.empty()) read_fingerprint(chunk.fingerprint, a.result);
      if (chunk.has_usage) {
        a.result.prompt_tokens = chunk.prompt_tokens;
        a.result.completion_tokens = chunk.completion_tokens;
      }
      if (chunk.finish) {
        a.result.reason = *chunk.finish;
        finished = true;
      }
    }
  }
  if (!finished) return ended_early("the connection closed", "stream_truncated");
  a.what = verdict::done;
  a.log = "200 stream, " + std::to_string(pieces) + " pieces (no [DONE])";
  return a;
}

client_outcome client::impl::call(const request& r, const stream_handlers* handlers) {
  client_outcome out;
  auto& trace = out.trace;
  trace.request_id = r.request_id.empty() ? opts.mint_request_id() : r.request_id;
  const bool stream = handlers != nullptr;
  auto refuse = [&](client_error e) {
    out.error = std::move(e);
    return out;
  };
  if (!valid_request_id(trace.request_id)) {
    return refuse(client_error{client_error_kind::invalid_argument,
                               "request id '" + trace.request_id.substr(0, 40) +
                                   "' is not 1..128 characters of [A-Za-z0-9._:-]",
                               0,
                               "invalid_argument",
                               "request_id",
                               {}});
  }
  if (auto bad = check_request(r)) {
    return refuse(client_error{
        client_error_kind::invalid_argument, bad->message, 0, "invalid_argument", bad->param, {}});
  }
  const auto deadline = steady::now() + opts.deadline;
  site_address to = first();
  site_address origin = to;  // where the current redirect chain started
  std::string path = path_for(r);
  const rendered_request rendered = render(r, trace.request_id, stream);
  auto backoff = opts.backoff_initial;
  std::uint32_t counted = 0;  // requests sent, those answered by a redirect not counted
  // 307s in a row. A chain ends at any other answer: during a failover a standby keeps sending
  // the client to the dead leader until the election ends, and each such round is bounded by
  // attempts_max and the deadline (the refused connection), not by redirects_max.
  std::uint32_t hops = 0;
  client_error last;

  // Waits `d` unless that passes the deadline; false: the call has ended with `last` as why.
  auto wait = [&](std::chrono::milliseconds d) {
    if (steady::now() + d >= deadline) return false;
    if (d.count() > 0) opts.sleep(d);
    return true;
  };
  auto deadline_error = [&](const std::string& during) {
    client_error e = last;
    e.kind = client_error_kind::deadline_exceeded;
    e.message = "the call's deadline of " + std::to_string(opts.deadline.count()) + " ms passed " +
                during + "; last: " + last.message;
    return e;
  };

  while (true) {
    if (steady::now() >= deadline) return refuse(deadline_error("before the next attempt"));
    trace.address = to.to_string();
    ++trace.attempts;
    auto a = attempt(to, path, rendered, handlers, deadline);
    trace.log.push_back(trace.address + " -> " + a.log);
    switch (a.what) {
      case verdict::done: {
        remember(to);
        // A stream whose request id is already committed (a retry, or the caller asking again)
        // is answered from the journal with the final event only: the text was released by the
        // attempt that committed it. Fetch the text with the same request id, also answered
        // from the journal, and deliver it as one piece.
        if (stream && !a.delivered_text && a.result.completion_tokens > 0) {
          ++trace.attempts;
          auto whole = attempt(to, path, render(r, trace.request_id, false), nullptr, deadline);
          trace.log.push_back(trace.address + " -> replayed text: " + whole.log);
          if (whole.what != verdict::done) {
            if (whole.what != verdict::fail) {
              whole.error.message =
                  "the replayed stream's text could not be fetched: " + whole.error.message;
            }
            return refuse(whole.error);
          }
          if (handlers->on_text && !whole.result.text.empty()) handlers->on_text(whole.result.text);
          a.result.text = whole.result.text;
          a.result.site = whole.result.site;
          a.result.epoch = whole.result.epoch;
        }
        out.result = std::move(a.result);
        return out;
      }
      case verdict::redirect: {
        ++trace.redirects;
        if (++hops > opts.redirects_max) {
          return refuse(client_error{client_error_kind::too_many_redirects,
                                     "more than " + std::to_string(opts.redirects_max) +
                                         " redirects in a row (a redirect loop?); the last was " +
                                         trace.address + " to " + a.location.substr(0, 120),
                                     307,
                                     "too_many_redirects",
                                     {},
                                     {}});
        }
        auto target = parse_location(a.location);
        if (auto* why = std::get_if<std::string>(&target)) {
          return refuse(
              client_error{client_error_kind::bad_redirect,
                           trace.address + " redirected with a bad " +
                               (a.location.empty() ? std::string("(missing) Location") : *why),
                           307,
                           "bad_redirect",
                           {},
                           {}});
        }
        auto& t = std::get<redirect_target>(target);
        to = t.address;
        path = t.path;
        remember(to);  // the leader, for later calls too
        continue;
      }
      case verdict::fail:
        // The deadline cutting an attempt short says little alone: add what failed before.
        if (a.error.kind == client_error_kind::deadline_exceeded && !last.message.empty())
          a.error.message += "; before that: " + last.message;
        return refuse(a.error);
      case verdict::retry_next:
      case verdict::retry_same:
        break;
    }
    hops = 0;
    last = a.error;
    ++counted;
    if (counted >= opts.attempts_max) {
      client_error e = last;
      if (e.kind != client_error_kind::overloaded) e.kind = client_error_kind::unavailable;
      e.message = "gave up after " + std::to_string(counted) +
                  " attempts (attempts_max); last: " + last.message;
      return refuse(e);
    }
    std::chrono::milliseconds pause = backoff;
    if (a.what == verdict::retry_same && a.wait.count() > 0) {
      if (a.wait > opts.retry_after_max) {
        client_error e = last;
        e.message = trace.address + " asked to retry after " + std::to_string(a.wait.count()) +
                    " ms, over retry_after_max (" + std::to_string(opts.retry_after_max.count()) +
                    " ms): " + last.message;
        return refuse(e);
      }
      pause = a.wait;
    } else {
      backoff = std::min(backoff * 2, opts.backoff_max);
    }
    if (!wait(pause)) {
      return refuse(deadline_error("(the next attempt was due after " +
                                   std::to_string(pause.count()) + " ms)"));
    }
    if (stream && a.delivered_text) {
      ++trace.stream_restarts;
      if (handlers->on_restart) handlers->on_restart(last.message);
    }
    if (a.what == verdict::retry_next) {
      path = path_for(r);
      to = next_after(origin, to);
      origin = to;
    }
    ++trace.retries;
  }
}

client::client(client_options options) : impl_(std::make_unique<impl>(std::move(options))) {}
client::~client() = default;

client_outcome client::complete(const request& r) { return impl_->call(r, nullptr); }

client_outcome client::stream(const request& r, const stream_handlers& handlers) {
  return impl_->call(r, &handlers);
}

std::string client::preferred_site() const { return impl_->first().to_string(); }

}  // namespace bastion
