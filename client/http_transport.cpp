// Asio's scheduler, inlined here at -O2, reads its thread-local thread_info through a pointer GCC
// cannot prove non-null (Asio sets it on entering run()): -Wnull-dereference is a false alarm
// from the library's code, silenced for this file only.
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include "client/http_transport.hpp"

// The only file of the client that includes Beast and Asio (they are heavy to compile).
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/rfc7230.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <iterator>
#include <limits>
#include <utility>

namespace bastion::client_detail {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;

// Decoded body bytes handed to the caller per read_body() at most.
constexpr std::size_t body_piece_bytes = 16384;
// Beyond the head, the read buffer holds the raw bytes of one socket read (Beast reads at most
// 64 KiB at a time) and a chunk-size line: a line longer than this slack is too_large.
constexpr std::size_t read_buffer_slack_bytes = 65536;
constexpr std::size_t excerpt_chars_max = 60;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// How long the next wait may last: the step (idle or connect timeout), cut short by the call's
// deadline. Which bound was nearer decides what the timer firing means: timed_out() is the one
// place that decides it.
struct wait_bound {
  steady::duration wait{};
  bool deadline_nearer = false;
  std::string peer;
  const char* during = "";  // "connecting", "sending the request", "reading the response head"

  // The failure when this wait's timer fired: the call's deadline when that was the nearer
  // bound, otherwise `step`, the step's own timeout.
  transport_error timed_out(transport_error step) const {
    if (deadline_nearer) {
      return {transport_failure::deadline, peer + ": the call's deadline passed while " + during};
    }
    return step;
  }
};

wait_bound bound_for(const transport_limits& limits, std::chrono::milliseconds step,
                     const std::string& peer, const char* during) {
  const auto left = limits.deadline - steady::now();
  if (left <= steady::duration::zero()) {
    throw transport_error(transport_failure::deadline,
                          peer + ": the call's deadline passed before " + during);
  }
  if (left < step) return {left, true, peer, during};
  return {step, false, peer, during};
}

// The unread bytes where the parser stopped, up to the end of their line, for a message that
// shows what the server sent instead of HTTP.
std::string excerpt_of(const beast::flat_buffer& pending) {
  const auto data = pending.data();
  const auto* p = static_cast<const char*>(data.data());
  std::string out;
  for (std::size_t i = 0; i < data.size() && out.size() < excerpt_chars_max; ++i) {
    const auto c = static_cast<unsigned char>(p[i]);
    if (c == '\r' || c == '\n') break;
    out += std::isprint(c) != 0 ? static_cast<char>(c) : '?';
  }
  return out;
}

}  // namespace

const char* code_of(transport_failure f) noexcept {
  switch (f) {
    case transport_failure::refused:
      return "connection_refused";
    case transport_failure::unreachable:
      return "unreachable";
    case transport_failure::lost:
      return "connection_lost";
    case transport_failure::idle:
      return "idle_timeout";
    case transport_failure::deadline:
      return "deadline_exceeded";
    case transport_failure::malformed:
      return "malformed_response";
    case transport_failure::too_large:
      return "response_too_large";
  }
  return "transport";
}

struct http_connection::wire {
  explicit wire(const transport_limits& limits)
      : buffer(std::min(limits.header_bytes_max,
                        std::numeric_limits<std::size_t>::max() - read_buffer_slack_bytes) +
               read_buffer_slack_bytes) {
    parser.header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(limits.header_bytes_max, std::numeric_limits<std::uint32_t>::max())));
    parser.body_limit(static_cast<std::uint64_t>(limits.body_bytes_max));
  }

  // Starts one asynchronous operation (`start` receives its completion handler) under the
  // stream's timer and runs the io_context until it completes: a blocking call with a timeout.
  // Beast's timeouts apply only to asynchronous operations, hence this instead of the
  // synchronous calls. The result is beast::error::timeout when the timer fired first.
  template <class Start>
  error_code run(steady::duration wait, Start&& start) {
    error_code result;
    stream.expires_after(wait);
    std::forward<Start>(start)([&result](error_code ec, auto&&...) { result = ec; });
    io.restart();
    io.run();
    return result;
  }

  net::io_context io;  // declared before the stream, which it outlives
  beast::tcp_stream stream{io};
  beast::flat_buffer buffer;  // received, not yet parsed; bounded (see the constructor)
  http::response_parser<http::buffer_body> parser;
  char piece[body_piece_bytes];
};

http_connection::http_connection(transport_limits limits)
    : limits_(limits), wire_(std::make_unique<wire>(limits_)) {}

http_connection::~http_connection() = default;

namespace {

// A failed read of the response as the transport_failure the client decides on. `part` names
// what was being read ("the response head", "the response body").
transport_error read_failure(const transport_limits& limits, const error_code& ec,
                             const wait_bound& bound, const char* part,
                             const beast::flat_buffer& pending) {
  const std::string where = bound.peer + ": ";
  if (ec == beast::error::timeout) {
    return bound.timed_out(
        {transport_failure::idle, where + "no more of " + part + " arrived for " +
                                      std::to_string(limits.idle_timeout.count()) + " ms"});
  }
  if (ec == http::error::end_of_stream) {
    // The peer closing before a single byte is a lost connection (the request may have been
    // handled: the retry's request id covers that), not a malformed answer.
    return {transport_failure::lost, where + "the connection closed before any answer"};
  }
  if (ec == http::error::partial_message) {
    return {transport_failure::lost,
            where + "the connection closed in the middle of " + part + " (" + ec.message() + ")"};
  }
  if (ec == http::error::header_limit) {
    return {transport_failure::too_large, where + "the response head is over " +
                                              std::to_string(limits.header_bytes_max) + " bytes"};
  }
  if (ec == http::error::body_limit) {
    return {transport_failure::too_large,
            where +
                "the response body (its declared length, a chunk's size, or the bytes so "
                "far) is over the limit of " +
                std::to_string(limits.body_bytes_max) + " bytes"};
  }
  if (ec == http::error::buffer_overflow) {
    return {transport_failure::too_large, where + "a line of " + part + " is over " +
                                              std::to_string(read_buffer_slack_bytes) + " bytes"};
  }
  if (ec == http::error::bad_chunk || ec == http::error::bad_chunk_extension) {
    // Beast checks the end of a chunk's data together with the next size line: either the
    // size is not a hex number or the chunk was longer than its size said.
    return {transport_failure::malformed,
            where + "a chunk size line or the end of the chunk before it is malformed (" +
                ec.message() + ") at '" + excerpt_of(pending) + "'"};
  }
  if (ec == http::error::bad_version) {
    // What came back does not start like "HTTP/1.x": another protocol, TLS, or noise.
    return {transport_failure::malformed, where + "the answer is not HTTP/1.x (" + ec.message() +
                                              ") at '" + excerpt_of(pending) + "'"};
  }
  if (ec.category() == error_code(http::error::bad_version).category()) {
    return {transport_failure::malformed, where + std::string(part) + " is malformed (" +
                                              ec.message() + ") at '" + excerpt_of(pending) + "'"};
  }
  return {transport_failure::lost, where + "the connection broke: " + ec.message()};
}

}  // namespace

void http_connection::open(const site_address& to) {
  peer_ = to.to_string();
  auto& w = *wire_;
  error_code ec;
  tcp::resolver resolver(w.io);
  const auto found = resolver.resolve(to.host, std::to_string(to.port), ec);
  if (ec) {
    throw transport_error(transport_failure::unreachable,
                          peer_ + ": cannot resolve host: " + ec.message());
  }
  std::string last = "no address";
  transport_failure last_kind = transport_failure::unreachable;
  for (const auto& entry : found) {
    const auto bound = bound_for(limits_, limits_.connect_timeout, peer_, "connecting");
    const auto endpoint = entry.endpoint();
    ec = w.run(bound.wait, [&](auto handler) { w.stream.async_connect(endpoint, handler); });
    if (!ec) {
      w.stream.socket().set_option(tcp::no_delay(true), ec);  // best effort: latency only
      return;
    }
    w.stream.close();
    if (ec == beast::error::timeout) {
      // A connect timeout moves on to the next address; the deadline ends the call.
      const auto failure = bound.timed_out(
          {transport_failure::unreachable,
           "no connection within " + std::to_string(limits_.connect_timeout.count()) + " ms"});
      if (failure.kind() == transport_failure::deadline) throw failure;
      last = failure.what();
      last_kind = failure.kind();
    } else {
      last = ec.message();
      last_kind = ec == net::error::connection_refused ? transport_failure::refused
                                                       : transport_failure::unreachable;
    }
  }
  throw transport_error(last_kind, peer_ + ": cannot connect: " + last);
}

void http_connection::send(const std::string& bytes) {
  auto& w = *wire_;
  const auto bound = bound_for(limits_, limits_.idle_timeout, peer_, "sending the request");
  const auto ec = w.run(
      bound.wait, [&](auto handler) { net::async_write(w.stream, net::buffer(bytes), handler); });
  if (!ec) return;
  if (ec == beast::error::timeout) {
    throw bound.timed_out({transport_failure::idle,
                           peer_ + ": the request could not be sent within the idle timeout"});
  }
  throw transport_error(transport_failure::lost,
                        peer_ + ": the connection broke while sending: " + ec.message());
}

response_head http_connection::read_head() {
  auto& w = *wire_;
  const auto bound = bound_for(limits_, limits_.idle_timeout, peer_, "reading the response head");
  const auto ec = w.run(bound.wait, [&](auto handler) {
    http::async_read_header(w.stream, w.buffer, w.parser, handler);
  });
  if (ec) {
    throw read_failure(limits_, ec, bound, "the response head", w.buffer);
  }
  const auto& message = w.parser.get();
  // Beast refuses any version but HTTP/1.0 and 1.1 (bad_version, above), and a status that is
  // not three digits; the range it leaves to us.
  response_head head;
  head.status = static_cast<int>(message.result_int());
  if (head.status < 100 || head.status > 599) {
    throw transport_error(transport_failure::malformed,
                          peer_ + ": HTTP status " + std::to_string(head.status) + " is invalid");
  }
  for (const auto& field : message) {
    const auto name = field.name_string();
    const auto value = field.value();
    head.headers[lower(std::string(name.data(), name.size()))] =
        std::string(value.data(), value.size());
  }
  // Beast reads a body whose Transfer-Encoding does not end in chunked until the close and
  // leaves other codings (gzip...) undecoded: the client asks for none, so any is refused.
  const auto te = message[http::field::transfer_encoding];
  if (!te.empty()) {
    const http::token_list codings(te);
    const auto count = std::distance(codings.begin(), codings.end());
    if (count != 1 || !w.parser.chunked()) {
      throw transport_error(transport_failure::malformed,
                            peer_ + ": unsupported Transfer-Encoding '" +
                                std::string(te.data(), std::min<std::size_t>(te.size(), 40)) + "'");
    }
  }
  return head;
}

bool http_connection::read_body(std::string& out) {
  auto& w = *wire_;
  while (!w.parser.is_done()) {
    auto& body = w.parser.get().body();
    body.data = w.piece;
    body.size = sizeof(w.piece);
    const auto bound = bound_for(limits_, limits_.idle_timeout, peer_, "reading the response body");
    auto ec = w.run(bound.wait, [&](auto handler) {
      http::async_read_some(w.stream, w.buffer, w.parser, handler);
    });
    if (ec == http::error::need_buffer) ec = {};  // the piece is full: the caller takes it
    const std::size_t n = sizeof(w.piece) - body.size;
    body.data = nullptr;
    // The parser is not eager: each read_some ends after one parsing step that made progress,
    // so body bytes and a failure never come back together; the bytes before a malformed chunk
    // or a closed connection reach the caller first.
    if (ec) {
      throw read_failure(limits_, ec, bound, "the response body", w.buffer);
    }
    if (n == 0) continue;  // a chunk's size line, no data yet
    body_bytes_ += n;
    out.append(w.piece, n);
    return true;
  }
  return false;
}

}  // namespace bastion::client_detail
