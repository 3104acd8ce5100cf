#pragma once
// A loopback HTTP "server" that answers each connection with bytes a test scripts (hostile ones
// included: garbage, truncated streams, huge lengths), and records each request it read. Not a
// gateway: it exists to put exactly the bytes a test needs in front of the client library.

#include "loopback.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bastion::client_testing {

class scripted_server {
 public:
  /// Connection k is answered with responses[min(k, size - 1)], then closed.
  explicit scripted_server(std::vector<std::string> responses)
      : responses_(std::move(responses)), listener_(16) {
    thread_ = std::thread([this] { serve(); });
  }
  ~scripted_server() {
    stop_ = true;
    thread_.join();
  }
  scripted_server(const scripted_server&) = delete;
  scripted_server& operator=(const scripted_server&) = delete;

  std::string address() const { return "127.0.0.1:" + std::to_string(listener_.port()); }

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
      pollfd p{listener_.fd(), POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int c = listener_.accept_one();
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
      send_all(c, out);
      finish(c);
    }
  }

  std::vector<std::string> responses_;
  loopback_listener listener_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

}  // namespace bastion::client_testing
