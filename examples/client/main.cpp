// Asking a three-site Bastion cluster from an application, through failovers.
//
//   client_example KEY SITE [SITE...]
//   e.g. client_example bastion-demo-key 127.0.0.1:18080 127.0.0.1:18180 127.0.0.1:18280
//
// Streams the answer to a question; if the primary fails over mid-answer, the client retries at
// the new primary with the same request id and says so before the text starts again.
#include <bastion/client.hpp>

#include <iostream>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: client_example API_KEY HOST:PORT [HOST:PORT...]\n";
    return 2;
  }
  bastion::client_options opts;
  opts.api_key = argv[1];
  for (int i = 2; i < argc; ++i) opts.sites.emplace_back(argv[i]);
  opts.deadline = std::chrono::seconds(30);  // the whole call, failovers included

  try {
    bastion::client cluster(opts);
    bastion::request r;
    r.model = "smollm2";
    r.messages = {{"user", "What is the capital of France?"}};
    r.max_tokens = 32;
    r.cls = bastion::priority::production;

    bastion::stream_handlers show;
    show.on_text = [](const std::string& piece) { std::cout << piece << std::flush; };
    show.on_restart = [](const std::string& why) {
      std::cout << "\n[the stream broke (" << why << "); the answer again from the start]\n";
    };
    const bastion::client_outcome out = cluster.stream(r, show);
    if (!out.ok()) {
      std::cerr << "\nrequest " << out.trace.request_id << " failed ("
                << bastion::to_string(out.error->kind) << "): " << out.error->message << '\n';
      return 1;
    }
    std::cout << "\n(" << out.result->completion_tokens << " tokens, request "
              << out.trace.request_id << ", answered by " << out.trace.address << " after "
              << out.trace.redirects << " redirects and " << out.trace.retries << " retries)\n";
    return 0;
  } catch (const std::invalid_argument& e) {
    std::cerr << "bad options: " << e.what() << '\n';
    return 2;
  }
}
