#pragma once
// The operator's door into a node (the `bastion` CLI, DESIGN.md §5 operations): the gateway
// serves `/admin/v1/<path>` to API keys marked `admin = true` and hands each request, body and
// all, to the admin_port its owner set. The gateway knows nothing of what the paths mean;
// embed/cluster_admin does (status, switchover, link faults).

#include <functional>
#include <string>

namespace bastion::gateway {

struct admin_reply {
  unsigned status = 200;  // an HTTP status; errors carry {"error": {"message": ...}}
  std::string json;
};

class admin_port {
 public:
  virtual ~admin_port() = default;
  /// `method` as HTTP spells it ("GET", "POST", "DELETE"), `path` the part after
  /// "/admin/v1/", `body` as received (at most the gateway's body_bytes_max), `principal` the
  /// admin key's name (for the journal's changed_by). Calls `done` exactly once, from any
  /// thread; the gateway answers 504 itself if that takes longer than admin_timeout_ms.
  virtual void handle(const std::string& method, const std::string& path, const std::string& body,
                      const std::string& principal, std::function<void(admin_reply)> done) = 0;
};

}  // namespace bastion::gateway
