// The shortest useful embedding of Bastion: start a node in-process, read its health, stop.
#include <bastion/node.hpp>

#include <iostream>

int main() {
  bastion::node_options opts;
  opts.name = "integrator-1";
  auto node = bastion::node::start(opts);
  const auto h = node->health();
  std::cout << "embedded bastion " << bastion::version() << ": node " << h.node << " at site "
            << h.site << ", up " << h.uptime_ms << " ms, cpu gemm " << h.cpu_gemm << '\n';
  node->stop();
  return h.node == "integrator-1" ? 0 : 1;
}
