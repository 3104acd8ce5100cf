#pragma once
// A deliberately plain blocking-socket HTTP/1.1 client for gateway tests: it sends exactly the
// bytes a test gives it (hostile ones included) and reads the raw answer, so nothing between the
// test and the gateway "helps".

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace bastion::gateway::testing {

class tcp_socket {
 public:
  explicit tcp_socket(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd_);
      throw std::runtime_error("connect failed");
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~tcp_socket() { close(); }
  tcp_socket(const tcp_socket&) = delete;
  tcp_socket& operator=(const tcp_socket&) = delete;

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  /// Closes with RST instead of FIN (SO_LINGER 0), like a crashed client.
  void reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close();
  }
  void set_receive_buffer(int bytes) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
  }

  bool send_all(const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      const auto n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }

  /// Reads what arrives within `timeout`; stops early at EOF. `eof` tells whether it was seen.
  std::string read_for(std::chrono::milliseconds timeout, bool* eof = nullptr,
                       std::size_t stop_after_bytes = SIZE_MAX) {
    std::string out;
    const auto until = std::chrono::steady_clock::now() + timeout;
    if (eof) *eof = false;
    while (out.size() < stop_after_bytes) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buf[65536];
      const auto n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        if (eof) *eof = true;
        break;
      }
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }

  /// Reads until the peer closes (or timeout); true if the peer closed.
  bool wait_closed(std::chrono::milliseconds timeout) {
    bool eof = false;
    read_for(timeout, &eof);
    return eof;
  }

 private:
  int fd_ = -1;
};

struct http_response {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;                            // de-chunked
  bool complete = false;

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

inline std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

/// Parses one response from raw bytes (Content-Length or chunked).
inline http_response parse_response(const std::string& raw) {
  http_response r;
  const auto head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos || raw.compare(0, 9, "HTTP/1.1 ") != 0) return r;
  r.status = std::stoi(raw.substr(9, 3));
  std::size_t pos = raw.find("\r\n") + 2;
  while (pos < head_end) {
    const auto eol = raw.find("\r\n", pos);
    const auto line = raw.substr(pos, eol - pos);
    const auto colon = line.find(':');
    if (colon != std::string::npos) {
      auto value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r.headers[lower(line.substr(0, colon))] = value;
    }
    pos = eol + 2;
  }
  std::string rest = raw.substr(head_end + 4);
  if (lower(r.header("transfer-encoding")) == "chunked") {
    std::size_t p = 0;
    while (true) {
      const auto eol = rest.find("\r\n", p);
      if (eol == std::string::npos) return r;
      const auto size = std::stoul(rest.substr(p, eol - p), nullptr, 16);
      if (size == 0) {
        r.complete = true;
        return r;
      }
      if (eol + 2 + size > rest.size()) return r;
      r.body += rest.substr(eol + 2, size);
      p = eol + 2 + size + 2;
    }
  }
  const auto cl = r.header("content-length");
  const std::size_t length = cl.empty() ? rest.size() : std::stoul(cl);
  r.body = rest.substr(0, length);
  r.complete = rest.size() >= length;
  return r;
}

/// One request on a fresh connection with "Connection: close"; reads until the peer closes.
inline http_response http_request(
    std::uint16_t port, const std::string& method, const std::string& path,
    const std::string& body = {}, const std::vector<std::string>& extra_headers = {},
    std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  tcp_socket s(port);
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
  for (const auto& h : extra_headers) req += h + "\r\n";
  if (!body.empty() || method == "POST") {
    req +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n" + body;
  s.send_all(req);
  // Read until the response is complete (the server may keep the connection open a while).
  std::string raw;
  const auto until = std::chrono::steady_clock::now() + timeout;
  bool eof = false;
  while (!eof && std::chrono::steady_clock::now() < until) {
    raw += s.read_for(std::chrono::milliseconds(20), &eof);
    if (parse_response(raw).complete) break;
  }
  return parse_response(raw);
}

/// The `data:` payloads of a server-sent-event body, in order.
inline std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    auto end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    const auto event = body.substr(pos, end - pos);
    if (event.compare(0, 6, "data: ") == 0) out.push_back(event.substr(6));
    pos = end + 2;
  }
  return out;
}

}  // namespace bastion::gateway::testing
