// The shortest useful embedding of Bastion.
//
//   integrator_example                  start a node in-process, read its health, stop
//   integrator_example CONFIG.toml      also serve the config's models and ask the first one a
//                                       question, streaming the answer as it is generated
#include <bastion/node.hpp>

#include <iostream>

int main(int argc, char** argv) {
  bastion::node_options opts;
  opts.name = "integrator-1";
  if (argc > 1) opts.config_file = argv[1];  // its [node] section then names the node
  try {
    auto node = bastion::node::start(opts);  // with a config: returns once models are loaded
    const auto h = node->health();
    std::cout << "embedded bastion " << bastion::version() << ": node " << h.node << " at site "
              << h.site << ", up " << h.uptime_ms << " ms, cpu gemm " << h.cpu_gemm << '\n';
    if (argc > 1) {
      bastion::request r;
      r.model = node->models().at(0);
      r.messages = {{"user", "What is the capital of France?"}};
      r.max_tokens = 32;
      auto s = node->stream(r, [](const std::string& piece) { std::cout << piece << std::flush; });
      const bastion::result answer = s.outcome.get();  // throws bastion::request_error
      std::cout << "\n(" << answer.completion_tokens << " tokens, finish "
                << bastion::to_string(answer.reason) << ", request " << answer.request_id << ")\n";
    }
    node->stop();
    return argc > 1 || h.node == "integrator-1" ? 0 : 1;
  } catch (const bastion::start_error& e) {
    std::cerr << "refused: " << e.what() << '\n';
  } catch (const bastion::request_error& e) {
    std::cerr << "request failed (" << bastion::to_string(e.kind()) << "): " << e.what() << '\n';
  }
  return 1;
}
