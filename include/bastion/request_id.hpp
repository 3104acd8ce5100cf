#pragma once
// The request id rule, shared by the gateway that enforces it and the client library that must
// refuse exactly what the gateway refuses: 1..128 characters from [A-Za-z0-9._:-], since an id
// travels in headers, logs and the journal (DESIGN.md §4). Header-only, no dependencies.

#include <cstddef>
#include <string_view>

namespace bastion {

inline constexpr std::size_t request_id_chars_max = 128;

inline bool valid_request_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > request_id_chars_max) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace bastion
