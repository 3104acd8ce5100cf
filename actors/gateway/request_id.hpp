#pragma once
// Request ids: a client may bring its own (so a retry can be recognised, DESIGN.md §4), checked
// by bastion::valid_request_id (include/bastion/request_id.hpp, shared with the client
// library). Otherwise the gateway mints 128 random bits as 32 hex digits.

#include "include/bastion/request_id.hpp"

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace bastion::gateway {

using bastion::request_id_chars_max;
using bastion::valid_request_id;

/// Produces a fresh id. Passed in (STYLE.md 8) so tests can make ids predictable.
using id_source = std::function<std::string()>;

/// 128 bits from OpenSSL's CSPRNG as lower-case hex.
std::string mint_random_request_id();

}  // namespace bastion::gateway
