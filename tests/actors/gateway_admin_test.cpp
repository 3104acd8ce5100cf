// The gateway's /admin/v1 door (actors/gateway/admin_port.hpp): only admin keys pass, the
// request reaches the admin port with its method, sub-path, body and principal, the port's
// answer goes back as it is, a port that never answers gets 504, and a node without an admin
// port says 404.

#include "actors/gateway/admin_port.hpp"
#include "actors/gateway/gateway_server.hpp"
#include "gateway_test_client.hpp"
#include "gateway_test_fixture.hpp"

#include <catch2/catch.hpp>

#include <mutex>
#include <thread>

using namespace bastion::gateway;
using namespace bastion::gateway::testing;

namespace {

constexpr const char* admin_key = "sk-operator-5555";

struct recording_admin final : admin_port {
  std::mutex mutex;
  std::string method, path, body, principal;
  bool answer = true;
  void handle(const std::string& m, const std::string& p, const std::string& b,
              const std::string& who, std::function<void(admin_reply)> done) override {
    {
      std::lock_guard<std::mutex> lock(mutex);
      method = m;
      path = p;
      body = b;
      principal = who;
    }
    if (!answer) return;  // never calls done: the gateway must time out on its own
    // Answer from another thread, as the real port does.
    std::thread([done] { done({409, R"({"error":{"message":"not now"}})"}); }).detach();
  }
};

struct admin_fixture {
  explicit admin_fixture(bool with_admin) {
    auto s = test_settings();
    s.admin_timeout_ms = 300;
    s.api_keys.push_back({"operator", sha256_hex(admin_key), {"interactive"}, true});
    server = std::make_unique<gateway_server>(s, port, registry, clock, [] { return true; });
    if (with_admin) server->set_admin(&admin);
    if (auto err = server->start()) throw std::runtime_error(*err);
  }
  ~admin_fixture() { server->stop(); }
  fake_port port;
  bastion::metrics::registry registry;
  bastion::system_clock_source clock;
  recording_admin admin;
  std::unique_ptr<gateway_server> server;
};

}  // namespace

TEST_CASE("admin requests need an admin key and reach the admin port as sent") {
  admin_fixture f(true);
  const auto port = f.server->http_port();
  auto none = http_request(port, "GET", "/admin/v1/status");
  CHECK(none.status == 401);
  auto user = http_request(port, "GET", "/admin/v1/status", {},
                           {std::string("Authorization: Bearer ") + alice_key});
  CHECK(user.status == 403);
  CHECK(user.body.find("not an admin key") != std::string::npos);
  CHECK(f.admin.path.empty());  // refused before the port saw anything

  auto r = http_request(port, "POST", "/admin/v1/switchover", R"({"to":"dr-local"})",
                        {std::string("Authorization: Bearer ") + admin_key});
  CHECK(r.status == 409);  // the port's status and body, unchanged
  CHECK(r.body == R"({"error":{"message":"not now"}})");
  std::lock_guard<std::mutex> lock(f.admin.mutex);
  CHECK(f.admin.method == "POST");
  CHECK(f.admin.path == "switchover");
  CHECK(f.admin.body == R"({"to":"dr-local"})");
  CHECK(f.admin.principal == "operator");
}

TEST_CASE("an admin port that never answers gets 504, and the gateway keeps serving") {
  admin_fixture f(true);
  f.admin.answer = false;
  const auto port = f.server->http_port();
  auto r = http_request(port, "DELETE", "/admin/v1/faults", {},
                        {std::string("Authorization: Bearer ") + admin_key});
  CHECK(r.status == 504);
  CHECK(http_request(port, "GET", "/healthz").status == 200);
}

TEST_CASE("a node without an admin port answers 404 on /admin/v1") {
  admin_fixture f(false);
  auto r = http_request(f.server->http_port(), "GET", "/admin/v1/status", {},
                        {std::string("Authorization: Bearer ") + admin_key});
  CHECK(r.status == 404);
}
