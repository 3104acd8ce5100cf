#include "runtime/wire/errors.hpp"

#include <caf/make_message.hpp>
#include <caf/message.hpp>

namespace bastion::wire {

const char* to_string(wire_errc code) noexcept {
  switch (code) {
    case wire_errc::payload_too_large:
      return "payload_too_large";
    case wire_errc::misaligned_payload:
      return "misaligned_payload";
    case wire_errc::malformed_message:
      return "malformed_message";
    case wire_errc::unknown_kind:
      return "unknown_kind";
    case wire_errc::kind_mismatch:
      return "kind_mismatch";
    case wire_errc::bad_seal:
      return "bad_seal";
    case wire_errc::stale_epoch:
      return "stale_epoch";
  }
  return "unknown_wire_error";
}

caf::error make_error(wire_errc code) {
  return caf::error{static_cast<std::uint8_t>(code), wire_category::value};
}

caf::error make_error(wire_errc code, std::string detail) {
  return caf::error{static_cast<std::uint8_t>(code), wire_category::value,
                    caf::make_message(std::move(detail))};
}

std::string error_detail(const caf::error& err) {
  if (err.category() != wire_category::value) return {};
  const auto& ctx = err.context();
  return ctx.match_elements<std::string>() ? ctx.get_as<std::string>(0) : std::string{};
}

std::string render_wire_error(std::uint8_t code, caf::atom_value, const caf::message& ctx) {
  std::string out = "wire.";
  out += to_string(static_cast<wire_errc>(code));
  if (ctx.match_elements<std::string>()) {
    out += ": ";
    out += ctx.get_as<std::string>(0);
  }
  return out;
}

}  // namespace bastion::wire
