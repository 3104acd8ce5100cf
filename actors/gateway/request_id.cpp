#include "actors/gateway/request_id.hpp"

#include <openssl/rand.h>

#include <array>
#include <stdexcept>

namespace bastion::gateway {

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
