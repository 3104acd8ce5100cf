#pragma once
// Request ids: a client may bring its own (so a retry can be recognised, DESIGN.md §4); it must
// be 1..128 characters from [A-Za-z0-9._:-], since it travels in headers, logs and the journal.
// Otherwise the gateway mints 128 random bits as 32 hex digits.

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace bastion::gateway {

constexpr std::size_t request_id_chars_max = 128;

bool valid_request_id(std::string_view id);

/// Produces a fresh id. Passed in (STYLE.md 8) so tests can make ids predictable.
using id_source = std::function<std::string()>;

/// 128 bits from OpenSSL's CSPRNG as lower-case hex.
std::string mint_random_request_id();

}  // namespace bastion::gateway
