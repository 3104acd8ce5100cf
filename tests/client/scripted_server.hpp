#pragma once
// A loopback HTTP "server" that answers each connection with bytes a test scripts (hostile ones
// included: garbage, truncated streams, huge lengths), and records each request it read. Not a
// gateway: it exists to put exactly the bytes a test needs in front of the client library.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace bastion::client_testing {

class scripted_server {
 public:
  /// Connection k is answered with responses[min(k, size - 1)], then closed.
  explicit scripted_server(std::vector<std::string> responses) : responses_(std::move(responses)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd_, 16) != 0) {
      throw std::runtime_error("scripted_server: cannot listen");
    }
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~scripted_server() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  scripted_server(const scripted_server&) = delete;
  scripted_server& operator=(const scripted_server&) = delete;

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  /// The request heads read so far, in order.
  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }
  /// The value of `name` (as sent) in request k's head; empty if absent.
  std::string header_of(std::size_t k, const std::string& name) const {
    const auto all = requests();
    if (k >= all.size()) return {};
    const auto& head = all[k];
    const auto at = head.find("\r\n" + name + ": ");
    if (at == std::string::npos) return {};
    const auto start = at + 4 + name.size();
    return head.substr(start, head.find("\r\n", start) - start);
  }

 private:
  void serve() {
    std::size_t served = 0;
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string in;
      char buf[4096];
      // The head, then as many body bytes as Content-Length says (bounded by the test's size).
      while (in.find("\r\n\r\n") == std::string::npos && in.size() < 65536) {
        const auto n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        in.append(buf, static_cast<std::size_t>(n));
      }
      const auto head_end = in.find("\r\n\r\n");
      const auto cl = in.find("Content-Length: ");
      if (head_end != std::string::npos && cl != std::string::npos) {
        const auto want = head_end + 4 + std::stoul(in.substr(cl + 16));
        while (in.size() < want) {
          const auto n = ::recv(c, buf, sizeof(buf), 0);
          if (n <= 0) break;
          in.append(buf, static_cast<std::size_t>(n));
        }
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        requests_.push_back(in.substr(0, head_end == std::string::npos ? in.size() : head_end + 2));
      }
      const auto& out = responses_[std::min(served, responses_.size() - 1)];
      ++served;
      std::size_t sent = 0;
      while (sent < out.size()) {
        const auto n = ::send(c, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
      }
      ::shutdown(c, SHUT_WR);
      // Let the client read everything before the socket goes (a close with unread input
      // would reset the connection and lose what was sent).
      pollfd q{c, POLLIN, 0};
      while (::poll(&q, 1, 200) > 0 && ::recv(c, buf, sizeof(buf), 0) > 0) {
      }
      ::close(c);
    }
  }

  std::vector<std::string> responses_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

/// A port on loopback where nothing listens (bound, then closed).
inline std::uint16_t dead_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace bastion::client_testing
