#pragma once
// Typed errors for bytes that arrive from another process. Every one is an operating error
// (bad input), never a bug: it is returned as a caf::error, counted, and the frame dropped.

#include <caf/atom.hpp>
#include <caf/error.hpp>

#include <cstdint>
#include <string>

namespace bastion::wire {

enum class wire_errc : std::uint8_t {
  // Codes start at 1: CAF treats code 0 as "no error".
  payload_too_large = 1,  // payload over limits::payload_bytes_max
  misaligned_payload,     // flat Cap'n Proto messages are whole 8-byte words
  malformed_message,      // bad segment table, pointer out of bounds, traversal/nesting limit
  unknown_kind,           // frame kind this build does not know
  kind_mismatch,          // decoded as one kind, the envelope says another
  bad_seal,               // seal does not verify (until sealing lands: any non-null seal)
  stale_epoch,            // envelope epoch older than the receiver's
};

/// The atom naming the category, registered with the actor system by announce_wire_types.
using wire_category = caf::atom_constant<caf::atom("wire")>;

const char* to_string(wire_errc code) noexcept;

/// ADL hook so `caf::error err = wire_errc::x;` works.
caf::error make_error(wire_errc code);
/// The error with a message for the person who reads the log.
caf::error make_error(wire_errc code, std::string detail);

/// The detail string of a wire error (empty for other errors or none given).
std::string error_detail(const caf::error& err);

/// Renders an error of the wire category, e.g. "wire.malformed_message: <detail>".
std::string render_wire_error(std::uint8_t code, caf::atom_value, const caf::message& ctx);

}  // namespace bastion::wire
