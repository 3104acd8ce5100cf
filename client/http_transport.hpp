#pragma once
// One HTTP/1.1 exchange on its own TCP connection: Boost.Beast's response parser over an Asio
// TCP stream, driven from the calling thread (each wait runs the connection's own io_context
// until the operation or its timer completes). Connect, send the request, read the head, then the
// body piece by piece (Content-Length, chunked, or until close) so a server-sent-event stream is
// seen as it arrives. Every wait is bounded by the idle timeout and by the call's deadline; the
// head and the body by byte limits. Beast stays out of this header (compile time): the stream,
// buffer and parser live in http_connection::wire, defined in http_transport.cpp.
//
// Failures are thrown as transport_error and caught by the client's attempt runner
// (client/client.cpp), which turns them into a retry decision or a typed error: a failure can
// arise in any of a dozen reads and one catch at the attempt boundary keeps each read plain.
// transport_error never leaves the library.

#include "client/site_address.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

namespace bastion::client_detail {

using steady = std::chrono::steady_clock;

enum class transport_failure : std::uint8_t {
  refused,      // nothing listens there (ECONNREFUSED): retryable, nothing was sent
  unreachable,  // name lookup failed, no route, connect timed out: retryable
  lost,         // reset or closed before the answer was complete: retryable (same request id)
  idle,         // no byte within the idle timeout: retryable
  deadline,     // the call's deadline passed: the call ends
  malformed,    // the bytes are not an HTTP/1.x response: the call ends
  too_large,    // a head or body over its limit: the call ends
};
const char* code_of(transport_failure f) noexcept;  // "connection_refused", ...

class transport_error : public std::runtime_error {
 public:
  transport_error(transport_failure kind, const std::string& what)
      : std::runtime_error(what), kind_(kind) {}
  transport_failure kind() const noexcept { return kind_; }

 private:
  transport_failure kind_;
};

struct transport_limits {
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds idle_timeout{30000};
  std::size_t header_bytes_max = 64 * 1024;
  std::size_t body_bytes_max = std::size_t{8} << 20;
  steady::time_point deadline = steady::time_point::max();
};

struct response_head {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased; a repeated name keeps the last
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class http_connection {
 public:
  explicit http_connection(transport_limits limits);
  ~http_connection();
  http_connection(const http_connection&) = delete;
  http_connection& operator=(const http_connection&) = delete;

  /// Connects to the first of the host's addresses that accepts. Throws transport_error.
  void open(const site_address& to);
  /// Sends the whole request (head and body) as given.
  void send(const std::string& bytes);
  /// Reads the status line and headers. REQUIRES: after send(), once.
  response_head read_head();
  /// Appends the next decoded body bytes to `out`; false once the body is complete (nothing
  /// appended then). The body ending early is `lost`; over body_bytes_max is `too_large`.
  bool read_body(std::string& out);
  std::size_t body_bytes() const noexcept { return body_bytes_; }

 private:
  struct wire;  // Beast's stream, read buffer and parser

  transport_limits limits_;
  std::string peer_;
  std::unique_ptr<wire> wire_;
  std::size_t body_bytes_ = 0;
};

}  // namespace bastion::client_detail
