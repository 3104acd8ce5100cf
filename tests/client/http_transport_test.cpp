// The client's HTTP/1.1 transport on its own (client/http_transport.hpp): body pieces handed over
// as they arrive, silence classified as idle or deadline by the nearer bound, a connect nobody
// answers, and bytes before a malformed chunk delivered before the failure.
#include "client/http_transport.hpp"

#include "loopback.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace bastion::client_detail;
using std::chrono::milliseconds;

using bastion::client_testing::finish;
using bastion::client_testing::send_all;

// A loopback listener that the transport reaches as a site_address.
class listener : public bastion::client_testing::loopback_listener {
 public:
  using loopback_listener::loopback_listener;
  site_address address() const { return {"127.0.0.1", port()}; }
};

// A server thread joined however the test body ends (a failed REQUIRE throws past it).
class server_thread {
 public:
  template <class F>
  explicit server_thread(F&& body) : thread_(std::forward<F>(body)) {}
  ~server_thread() { thread_.join(); }
  server_thread(const server_thread&) = delete;
  server_thread& operator=(const server_thread&) = delete;

 private:
  std::thread thread_;
};

transport_limits quick_limits() {
  transport_limits l;
  l.connect_timeout = milliseconds(1000);
  l.idle_timeout = milliseconds(2000);
  l.deadline = steady::now() + milliseconds(5000);
  return l;
}

const std::string request = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";

transport_failure failure_of(http_connection& c, std::string& out, std::string* message) {
  try {
    while (c.read_body(out)) {
    }
  } catch (const transport_error& e) {
    if (message != nullptr) *message = e.what();
    return e.kind();
  }
  FAIL("the body was read without a transport_error");
  return transport_failure::lost;
}

}  // namespace

TEST_CASE("transport: each body piece reaches the caller before the server sends the next") {
  for (const bool chunked : {true, false}) {
    INFO((chunked ? "chunked" : "until close"));
    listener l(4);
    std::promise<void> first_read;
    auto first_read_done = first_read.get_future();
    server_thread server([&] {
      const int c = l.accept_one();
      char buf[4096];
      (void)::recv(c, buf, sizeof(buf), 0);
      send_all(
          c, std::string("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n") +
                 (chunked ? "Transfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n" : "\r\nfirst\n"));
      // The second piece only once the client has the first: a transport that waited for the
      // body's end would time out here instead.
      first_read_done.wait_for(std::chrono::seconds(5));
      send_all(c, chunked ? "7\r\nsecond\n\r\n0\r\n\r\n" : "second\n");
      finish(c);
    });
    http_connection conn(quick_limits());
    conn.open(l.address());
    conn.send(request);
    const auto head = conn.read_head();
    CHECK(head.status == 200);
    CHECK(head.header("content-type") == "text/event-stream");
    std::string got;
    REQUIRE(conn.read_body(got));
    CHECK(got == "first\n");
    first_read.set_value();
    while (conn.read_body(got)) {
    }
    CHECK(got == "first\nsecond\n");
    CHECK(conn.body_bytes() == 13);
  }
}

TEST_CASE("transport: silence is idle_timeout, or deadline_exceeded when the deadline is nearer") {
  listener l(4);  // never accepts: the kernel completes the handshake, nobody answers
  auto limits = quick_limits();
  limits.idle_timeout = milliseconds(200);
  {
    http_connection conn(limits);
    conn.open(l.address());
    conn.send(request);
    const auto start = steady::now();
    try {
      conn.read_head();
      FAIL("a head was read from a server that sends nothing");
    } catch (const transport_error& e) {
      CHECK(e.kind() == transport_failure::idle);
      CHECK(std::string(e.what()).find("200 ms") != std::string::npos);
    }
    CHECK(steady::now() - start >= milliseconds(200));
    CHECK(steady::now() - start < milliseconds(2000));
  }
  limits.idle_timeout = milliseconds(5000);
  limits.deadline = steady::now() + milliseconds(300);
  http_connection conn(limits);
  conn.open(l.address());
  conn.send(request);
  try {
    conn.read_head();
    FAIL("a head was read from a server that sends nothing");
  } catch (const transport_error& e) {
    CHECK(e.kind() == transport_failure::deadline);
    CHECK(std::string(e.what()).find("deadline passed while reading the response head") !=
          std::string::npos);
  }
  CHECK(steady::now() < limits.deadline + milliseconds(1000));
}

TEST_CASE("transport: a connect nobody answers is unreachable after the connect timeout") {
  // A listener whose accept queue is full: Linux drops further SYNs, so a connect hangs.
  listener l(0);
  std::vector<int> held;
  for (int i = 0; i < 4; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(l.address().port);
    (void)::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    held.push_back(fd);
  }
  std::this_thread::sleep_for(milliseconds(100));
  auto limits = quick_limits();
  limits.connect_timeout = milliseconds(300);
  http_connection conn(limits);
  const auto start = steady::now();
  try {
    conn.open(l.address());
    FAIL("connected to a listener whose accept queue is full");
  } catch (const transport_error& e) {
    CHECK(e.kind() == transport_failure::unreachable);
    CHECK(std::string(e.what()).find("no connection within 300 ms") != std::string::npos);
  }
  CHECK(steady::now() - start < milliseconds(2000));
  for (const int fd : held) ::close(fd);
}

TEST_CASE("transport: the bytes before a malformed chunk are delivered, then malformed") {
  for (const std::string body : {"5\r\nhello\r\nzz\r\n", "5\r\nhello\r\n2\r\nxyz\r\n0\r\n\r\n"}) {
    INFO(body);
    listener l(4);
    server_thread server([&] {
      const int c = l.accept_one();
      char buf[4096];
      (void)::recv(c, buf, sizeof(buf), 0);
      send_all(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body);
      finish(c);
    });
    http_connection conn(quick_limits());
    conn.open(l.address());
    conn.send(request);
    conn.read_head();
    std::string got;
    std::string message;
    CHECK(failure_of(conn, got, &message) == transport_failure::malformed);
    CHECK(got.substr(0, 5) == "hello");
    CHECK(message.find("chunk size") != std::string::npos);
  }
}
