#pragma once
// Addresses the client library talks to: the configured "host:port" of each site, and the
// http:// URLs a standby's 307 Location names. Pure parsing, no I/O; untrusted text (a Location
// header) comes back as an explanation, never an exception.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace bastion::client_detail {

struct site_address {
  std::string host;  // a name, an IPv4 literal, or an IPv6 literal without brackets
  std::uint16_t port = 0;

  /// "host:port", with brackets around an IPv6 literal.
  std::string to_string() const;
  bool operator==(const site_address& o) const { return host == o.host && port == o.port; }
};

/// "host:port", "1.2.3.4:80" or "[::1]:80". The port is required (1..65535); the host may hold
/// only letters, digits, '.', '-', '_' (and ':' inside brackets). Error: why not.
std::variant<site_address, std::string> parse_site_address(std::string_view text);

struct redirect_target {
  site_address address;
  std::string path;  // starts with '/': path and query of the Location
};

/// A 307's Location: "http://host:port/path". Refused (with why): any other scheme, no port,
/// a missing or relative path, control characters or spaces, over 2048 characters.
std::variant<redirect_target, std::string> parse_location(std::string_view location);

}  // namespace bastion::client_detail
