// A gateway on loopback with the scripted fake port, for clients nobody here wrote (the official
// `openai` Python client, pycapnp). Prints "http_port=N rpc_port=M" on one line, serves until
// its stdin closes, then stops (draining) and exits 0. The API key "sk-test-key" may use every
// priority class.

#include "../actors/gateway_fake_port.hpp"
#include "actors/gateway/api_keys.hpp"
#include "actors/gateway/gateway_server.hpp"

#include <iostream>
#include <string>

int main() {
  using namespace bastion::gateway;
  testing::fake_port port;
  bastion::metrics::registry registry;
  bastion::system_clock_source clock;
  gateway_settings settings;
  settings.http_listen = {"127.0.0.1", 0};
  settings.rpc_listen = {"127.0.0.1", 0};
  settings.api_keys = {
      {"test", sha256_hex("sk-test-key"), {"production", "interactive", "batch", "training"}}};
  gateway_server server(settings, port, registry, clock, [] { return true; });
  if (auto err = server.start()) {
    std::cerr << *err << "\n";
    return 1;
  }
  std::cout << "http_port=" << server.http_port() << " rpc_port=" << server.rpc_port() << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  server.stop();
  return 0;
}
