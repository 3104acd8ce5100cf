#pragma once
// One HTTP call to a node's admin endpoint (/admin/v1/...), for the `bastion` CLI: its own KJ
// event loop, a timeout, and the answer or the reason there is none (connection refused, a
// site that hangs). Synchronous: the CLI asks one site at a time.

#include <chrono>
#include <string>

namespace bastion::cli {

struct http_answer {
  int status = 0;     // 0: no answer (see error)
  std::string body;   // the response body
  std::string error;  // why there is no answer
};

/// `host_port` as "127.0.0.1:18080"; `path` as "/admin/v1/status"; `key` the admin API key
/// (sent as a bearer token).
http_answer http_call(const std::string& host_port, const std::string& method,
                      const std::string& path, const std::string& key, const std::string& body,
                      std::chrono::milliseconds timeout);

}  // namespace bastion::cli
