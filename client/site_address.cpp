#include "client/site_address.hpp"

#include <cctype>

namespace bastion::client_detail {

namespace {

constexpr std::size_t location_chars_max = 2048;
constexpr std::size_t host_chars_max = 253;  // the longest DNS name

bool host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-' || c == '_';
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  std::uint32_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (v == 0 || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

}  // namespace

std::string site_address::to_string() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::variant<site_address, std::string> parse_site_address(std::string_view text) {
  const std::string quoted = "'" + std::string(text.substr(0, 80)) + "'";
  site_address out;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return quoted + " is not [ipv6]:port";
    const auto host = text.substr(1, close - 1);
    if (host.empty()) return quoted + " has an empty host";
    for (char c : host) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.')
        return quoted + " has a character that is not part of an IPv6 address";
    }
    out.host = std::string(host);
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return quoted + " has no port (host:port)";
    const auto host = text.substr(0, colon);
    if (host.empty()) return quoted + " has an empty host";
    if (host.size() > host_chars_max) return quoted + " has a host name over 253 characters";
    for (char c : host) {
      if (!host_char(c)) return quoted + " has a character not allowed in a host name";
    }
    out.host = std::string(host);
    port_text = text.substr(colon + 1);
  }
  const auto port = parse_port(port_text);
  if (!port) return quoted + " has no port in 1..65535";
  out.port = *port;
  return out;
}

std::variant<redirect_target, std::string> parse_location(std::string_view location) {
  if (location.size() > location_chars_max) return std::string("Location is over 2048 characters");
  for (char c : location) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F) return std::string("Location has a space or control character");
  }
  const std::string quoted = "'" + std::string(location.substr(0, 120)) + "'";
  constexpr std::string_view scheme = "http://";
  const auto sep = location.find("://");
  if (sep == std::string_view::npos) return "Location " + quoted + " is not an absolute URL";
  std::string lowered(location.substr(0, sep + 3));
  for (auto& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lowered != scheme)
    return "Location " + quoted + " uses scheme '" + std::string(location.substr(0, sep)) +
           "'; only http:// is supported";
  const auto rest = location.substr(scheme.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) return "Location " + quoted + " has no path";
  const auto authority = rest.substr(0, slash);
  if (authority.find('@') != std::string_view::npos)
    return "Location " + quoted + " carries user information";
  auto address = parse_site_address(authority);
  if (auto* why = std::get_if<std::string>(&address)) return "Location " + quoted + ": " + *why;
  return redirect_target{std::get<site_address>(address), std::string(rest.substr(slash))};
}

}  // namespace bastion::client_detail
