#include "actors/gateway/api_keys.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace bastion::gateway {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool parse_digest(const std::string& hex, std::array<std::uint8_t, 32>& out) {
  if (hex.size() != 64) return false;
  for (std::size_t i = 0; i < 32; ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return true;
}

std::array<std::uint8_t, 32> sha256(std::string_view text) {
  std::array<std::uint8_t, 32> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest.data());
  return digest;
}

}  // namespace

std::optional<priority_class> parse_priority(std::string_view name) {
  return scheduling::parse_priority_class(std::string{name});
}

const char* priority_name(priority_class p) { return scheduling::to_string(p); }

std::optional<api_key_table> api_key_table::build(const std::vector<config::api_key_section>& keys,
                                                  bool allow_anonymous, std::string& error) {
  api_key_table table;
  table.allow_anonymous_ = allow_anonymous;
  for (const auto& key : keys) {
    entry e;
    if (!parse_digest(key.key_sha256, e.digest)) {
      error = "api key '" + key.name + "': key_sha256 must be 64 hex digits (SHA-256 of the key)";
      return std::nullopt;
    }
    e.who.name = key.name;
    e.who.admin = key.admin;
    for (const auto& cls : key.classes) {
      const auto p = parse_priority(cls);
      if (!p) {
        error = "api key '" + key.name + "': unknown priority class '" + cls + "'";
        return std::nullopt;
      }
      e.who.allowed_classes_mask |= static_cast<std::uint8_t>(1U << static_cast<unsigned>(*p));
    }
    table.entries_.push_back(std::move(e));
  }
  return table;
}

std::optional<principal> api_key_table::authenticate(std::string_view key) const {
  if (anonymous()) return principal{"anonymous", 0x0F};
  if (key.empty()) return std::nullopt;
  const auto digest = sha256(key);
  const entry* match = nullptr;
  for (const auto& e : entries_) {
    // Every entry is compared, match or not, so the time taken does not depend on which matched.
    const bool equal = CRYPTO_memcmp(e.digest.data(), digest.data(), digest.size()) == 0;
    if (equal && match == nullptr) match = &e;
  }
  if (match == nullptr) return std::nullopt;
  return match->who;
}

std::string sha256_hex(std::string_view text) {
  static const char* digits = "0123456789abcdef";
  const auto digest = sha256(text);
  std::string hex;
  hex.reserve(64);
  for (auto b : digest) {
    hex.push_back(digits[b >> 4]);
    hex.push_back(digits[b & 0x0F]);
  }
  return hex;
}

}  // namespace bastion::gateway
