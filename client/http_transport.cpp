#include "client/http_transport.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

namespace bastion::client_detail {

namespace {

constexpr std::size_t read_chunk_bytes = 16384;
constexpr std::size_t chunk_line_chars_max = 1024;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

std::string errno_text(int e) { return std::strerror(e); }

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

http_connection::~http_connection() {
  if (fd_ >= 0) ::close(fd_);
}

std::chrono::milliseconds http_connection::wait_budget(std::chrono::milliseconds step) const {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(limits_.deadline - steady::now());
  if (left.count() <= 0) {
    throw transport_error(transport_failure::deadline,
                          peer_ + ": the call's deadline passed while waiting for it");
  }
  return std::min(step, left);
}

void http_connection::open(const site_address& to) {
  peer_ = to.to_string();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(to.port);
  const int rc = ::getaddrinfo(to.host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) {
    throw transport_error(transport_failure::unreachable,
                          peer_ + ": cannot resolve host: " + ::gai_strerror(rc));
  }
  std::string last = "no address";
  transport_failure last_kind = transport_failure::unreachable;
  for (auto* a = found; a != nullptr; a = a->ai_next) {
    const int fd =
        ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last = "socket: " + errno_text(errno);
      continue;
    }
    int err = 0;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        int ready = 0;
        std::chrono::milliseconds budget{0};
        try {
          budget = wait_budget(limits_.connect_timeout);
          ready = ::poll(&p, 1, static_cast<int>(budget.count()));
        } catch (...) {
          ::close(fd);
          ::freeaddrinfo(found);
          throw;
        }
        if (ready <= 0 && budget < limits_.connect_timeout) {
          ::close(fd);
          ::freeaddrinfo(found);
          throw transport_error(transport_failure::deadline,
                                peer_ + ": the call's deadline passed while connecting");
        }
        if (ready <= 0) {
          err = ETIMEDOUT;
        } else {
          socklen_t len = sizeof(err);
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        }
      }
    }
    if (err == 0) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      fd_ = fd;
      ::freeaddrinfo(found);
      return;
    }
    ::close(fd);
    last = err == ETIMEDOUT
               ? "no connection within " + std::to_string(limits_.connect_timeout.count()) + " ms"
               : errno_text(err);
    last_kind = err == ECONNREFUSED ? transport_failure::refused : transport_failure::unreachable;
  }
  ::freeaddrinfo(found);
  throw transport_error(last_kind, peer_ + ": cannot connect: " + last);
}

void http_connection::send(const std::string& bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    pollfd p{fd_, POLLOUT, 0};
    const auto budget = wait_budget(limits_.idle_timeout);
    const int ready = ::poll(&p, 1, static_cast<int>(budget.count()));
    if (ready == 0) {
      if (budget < limits_.idle_timeout) continue;  // cut short by the deadline: wait_budget says
      throw transport_error(transport_failure::idle,
                            peer_ + ": the request could not be sent within the idle timeout");
    }
    const auto n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      throw transport_error(transport_failure::lost,
                            peer_ + ": the connection broke while sending: " + errno_text(errno));
    }
    sent += static_cast<std::size_t>(n);
  }
}

bool http_connection::fill() {
  while (true) {
    pollfd p{fd_, POLLIN, 0};
    const auto budget = wait_budget(limits_.idle_timeout);
    const int ready = ::poll(&p, 1, static_cast<int>(budget.count()));
    if (ready == 0) {
      // Cut short by the deadline (poll's milliseconds may end just before it): wait_budget
      // reports the deadline on the next turn.
      if (budget < limits_.idle_timeout) continue;
      throw transport_error(
          transport_failure::idle,
          peer_ + ": no byte arrived for " + std::to_string(limits_.idle_timeout.count()) + " ms");
    }
    char chunk[read_chunk_bytes];
    const auto n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n == 0) return false;
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      throw transport_error(transport_failure::lost,
                            peer_ + ": the connection broke: " + errno_text(errno));
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }
}

std::string http_connection::take_line(std::size_t chars_max, const char* what) {
  std::size_t searched = 0;
  while (true) {
    const auto eol = buffer_.find('\n', searched);
    if (eol != std::string::npos) {
      if (eol > chars_max) {
        throw transport_error(
            transport_failure::too_large,
            peer_ + ": " + what + " is over " + std::to_string(chars_max) + " bytes");
      }
      std::string line = buffer_.substr(0, eol);
      buffer_.erase(0, eol + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    if (buffer_.size() > chars_max) {
      throw transport_error(transport_failure::too_large, peer_ + ": " + what + " is over " +
                                                              std::to_string(chars_max) + " bytes");
    }
    searched = buffer_.size();
    if (!fill()) {
      throw transport_error(transport_failure::lost,
                            peer_ + ": the connection closed in the middle of the " + what);
    }
  }
}

response_head http_connection::read_head() {
  response_head head;
  std::size_t head_bytes = 0;
  auto line_left = [&]() {
    return limits_.header_bytes_max - std::min(head_bytes, limits_.header_bytes_max);
  };
  // The peer closing before a single byte is a lost connection (the request may have been
  // handled: the retry's request id covers that), not a malformed answer.
  if (buffer_.empty() && !fill()) {
    throw transport_error(transport_failure::lost,
                          peer_ + ": the connection closed before any answer");
  }
  const std::string status_line = take_line(line_left(), "response head");
  head_bytes += status_line.size() + 2;
  // "HTTP/1.1 307 Temporary Redirect"
  if (status_line.size() < 12 || status_line.compare(0, 7, "HTTP/1.") != 0 ||
      status_line[8] != ' ' || !std::isdigit(static_cast<unsigned char>(status_line[9])) ||
      !std::isdigit(static_cast<unsigned char>(status_line[10])) ||
      !std::isdigit(static_cast<unsigned char>(status_line[11])) ||
      (status_line.size() > 12 && status_line[12] != ' ')) {
    throw transport_error(
        transport_failure::malformed,
        peer_ + ": the answer is not HTTP/1.x (status line '" + status_line.substr(0, 60) + "')");
  }
  head.status = std::stoi(status_line.substr(9, 3));
  if (head.status < 100 || head.status > 599) {
    throw transport_error(transport_failure::malformed,
                          peer_ + ": HTTP status " + std::to_string(head.status) + " is invalid");
  }
  while (true) {
    const std::string line = take_line(line_left(), "response head");
    head_bytes += line.size() + 2;
    if (line.empty()) break;
    const auto colon = line.find(':');
    if (colon == std::string::npos || colon == 0) {
      throw transport_error(
          transport_failure::malformed,
          peer_ + ": a response header line has no name: '" + line.substr(0, 60) + "'");
    }
    head.headers[lower(line.substr(0, colon))] = trim(line.substr(colon + 1));
  }

  const auto te = lower(head.header("transfer-encoding"));
  const auto cl = head.header("content-length");
  if (!te.empty()) {
    if (te != "chunked") {
      throw transport_error(transport_failure::malformed,
                            peer_ + ": unsupported Transfer-Encoding '" + te.substr(0, 40) + "'");
    }
    framing_ = framing::chunked;
  } else if (!cl.empty()) {
    if (cl.size() > 19 || cl.find_first_not_of("0123456789") != std::string::npos) {
      throw transport_error(transport_failure::malformed,
                            peer_ + ": Content-Length '" + cl.substr(0, 40) + "' is not a number");
    }
    length_left_ = std::stoull(cl);
    if (length_left_ > limits_.body_bytes_max) {
      throw transport_error(transport_failure::too_large,
                            peer_ + ": the response body of " + cl +
                                " bytes is over the limit of " +
                                std::to_string(limits_.body_bytes_max) + " bytes");
    }
    framing_ = framing::length;
    body_done_ = length_left_ == 0;
  } else {
    framing_ = framing::until_close;
  }
  if (head.status == 204 || head.status == 304 || head.status < 200) body_done_ = true;
  return head;
}

void http_connection::count_body(std::size_t n) {
  body_bytes_ += n;
  if (body_bytes_ > limits_.body_bytes_max) {
    throw transport_error(transport_failure::too_large,
                          peer_ + ": the response body is over the limit of " +
                              std::to_string(limits_.body_bytes_max) + " bytes");
  }
}

bool http_connection::read_body(std::string& out) {
  while (!body_done_) {
    switch (framing_) {
      case framing::until_close: {
        if (buffer_.empty() && !fill()) {
          body_done_ = true;
          return false;
        }
        count_body(buffer_.size());
        out += buffer_;
        buffer_.clear();
        return true;
      }
      case framing::length: {
        if (buffer_.empty() && !fill()) {
          throw transport_error(transport_failure::lost, peer_ + ": the connection closed " +
                                                             std::to_string(length_left_) +
                                                             " bytes before the end of the body");
        }
        const auto n = static_cast<std::size_t>(
            std::min<std::uint64_t>(length_left_, static_cast<std::uint64_t>(buffer_.size())));
        count_body(n);
        out.append(buffer_, 0, n);
        buffer_.erase(0, n);
        length_left_ -= n;
        body_done_ = length_left_ == 0;
        return true;
      }
      case framing::chunked: {
        switch (chunk_) {
          case chunk_state::size_line: {
            auto line = take_line(chunk_line_chars_max, "chunk size line");
            line = line.substr(0, line.find(';'));  // chunk extensions are ignored
            line = trim(line);
            if (line.empty() || line.size() > 15 ||
                line.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
              throw transport_error(
                  transport_failure::malformed,
                  peer_ + ": chunk size '" + line.substr(0, 20) + "' is not a hex number");
            }
            length_left_ = std::stoull(line, nullptr, 16);
            if (length_left_ > limits_.body_bytes_max) {
              throw transport_error(transport_failure::too_large,
                                    peer_ + ": a body chunk of " + std::to_string(length_left_) +
                                        " bytes is over the limit of " +
                                        std::to_string(limits_.body_bytes_max) + " bytes");
            }
            chunk_ = length_left_ == 0 ? chunk_state::trailer : chunk_state::data;
            break;
          }
          case chunk_state::data: {
            if (buffer_.empty() && !fill()) {
              throw transport_error(transport_failure::lost,
                                    peer_ + ": the connection closed inside a body chunk");
            }
            const auto n = static_cast<std::size_t>(
                std::min<std::uint64_t>(length_left_, static_cast<std::uint64_t>(buffer_.size())));
            count_body(n);
            out.append(buffer_, 0, n);
            buffer_.erase(0, n);
            length_left_ -= n;
            if (length_left_ == 0) chunk_ = chunk_state::data_end;
            return true;
          }
          case chunk_state::data_end: {
            if (!take_line(chunk_line_chars_max, "chunk end").empty()) {
              throw transport_error(transport_failure::malformed,
                                    peer_ + ": a body chunk is longer than its size says");
            }
            chunk_ = chunk_state::size_line;
            break;
          }
          case chunk_state::trailer: {
            if (take_line(chunk_line_chars_max, "chunk trailer").empty()) {
              chunk_ = chunk_state::done;
              body_done_ = true;
            }
            break;
          }
          case chunk_state::done:
            body_done_ = true;
            break;
        }
        break;
      }
    }
  }
  return false;
}

}  // namespace bastion::client_detail
