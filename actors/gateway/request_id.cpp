#include "actors/gateway/request_id.hpp"

#include <openssl/rand.h>

#include <array>
#include <stdexcept>

namespace bastion::gateway {

bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > request_id_chars_max) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string mint_random_request_id() {
  std::array<unsigned char, 16> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    // The CSPRNG failing is not a client's problem to handle; it breaks every id we would mint.
    throw std::runtime_error("RAND_bytes failed: cannot mint a request id");
  }
  static const char* digits = "0123456789abcdef";
  std::string id;
  id.reserve(32);
  for (auto b : bytes) {
    id.push_back(digits[b >> 4]);
    id.push_back(digits[b & 0x0F]);
  }
  return id;
}

}  // namespace bastion::gateway
