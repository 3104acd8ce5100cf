#pragma once
// API key check for both the HTTP API and the RPC service. The config holds SHA-256 digests of
// the keys, never the keys; a presented key is hashed and compared with every configured digest
// in constant time (the loop does not stop at a match), so timing reveals neither which key
// matched nor how much of a digest did.

#include "actors/gateway/inference_port.hpp"
#include "runtime/config/node_config.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bastion::gateway {

/// "production" | "interactive" | "batch" | "training"; anything else is nullopt.
std::optional<priority_class> parse_priority(std::string_view name);
const char* priority_name(priority_class p);

struct principal {
  std::string name;
  std::uint8_t allowed_classes_mask = 0;  // bit i = priority_class i
  bool admin = false;  // may use /admin/v1 (the operator's CLI)
  bool may_use(priority_class p) const {
    return (allowed_classes_mask >> static_cast<unsigned>(p)) & 1U;
  }
};

class api_key_table {
 public:
  /// Builds the table; a digest that is not 64 hex digits or an unknown class name is refused
  /// with a message naming the key. With no keys configured and allow_anonymous set, every
  /// caller is the principal "anonymous" with all classes; without it every caller is refused.
  static std::optional<api_key_table> build(const std::vector<config::api_key_section>& keys,
                                            bool allow_anonymous, std::string& error);

  /// The principal owning `key`, or nullopt (unknown or empty key).
  std::optional<principal> authenticate(std::string_view key) const;

  bool anonymous() const { return allow_anonymous_ && entries_.empty(); }

 private:
  struct entry {
    std::array<std::uint8_t, 32> digest{};
    principal who;
  };
  std::vector<entry> entries_;
  bool allow_anonymous_ = false;
};

/// Lower-case hex SHA-256 of `text` (what operators put in the config as key_sha256).
std::string sha256_hex(std::string_view text);

}  // namespace bastion::gateway
