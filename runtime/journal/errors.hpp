#pragma once
// Typed errors of the journal store. Every one is an operating error (full disk, corrupt file,
// full queue, bad request), returned as a caf::error whose detail names the file, the byte
// offset and the reason, so the person reading the log knows what to look at.

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>

#include <cstdint>
#include <string>

namespace bastion::journal {

enum class journal_errc : std::uint8_t {
  // Codes start at 1: CAF treats code 0 as "no error".
  io_error = 1,      // a read, write, fsync, rename or unlink failed (errno in the detail)
  no_space,          // ENOSPC / EDQUOT from the file system
  corrupt_record,    // a bad record before the tail of the log (file + offset in the detail)
  corrupt_file,      // a segment header, hard-state or snapshot file that does not parse
  journal_full,      // append would exceed file_store_options::total_bytes_max
  queue_full,        // the I/O queue is at queue_ops_max or queue_bytes_max
  record_too_large,  // a payload over file_store_options::record_bytes_max
  non_contiguous,    // append's first_index is not the index after the last entry
  closed,            // the store is stopped, or was never loaded
  store_failed,      // an earlier I/O error could not be rolled back; reopen the store
  invalid_options,   // a file_store_options value out of range
  locked,            // another process (or store) holds the journal directory's lock
};

/// The atom naming the category (register render_journal_error with the actor system).
using journal_category = caf::atom_constant<caf::atom("journal")>;

const char* to_string(journal_errc code) noexcept;

/// ADL hook so `caf::error err = journal_errc::x;` works.
caf::error make_error(journal_errc code);
/// The error with a message for the person who reads the log.
caf::error make_error(journal_errc code, std::string detail);
/// An error for a failed system call: ENOSPC/EDQUOT map to no_space, the rest to io_error.
/// `what` names the operation, file and offset; the errno text is appended.
caf::error make_io_error(int errno_value, const std::string& what);

/// The journal code of an error, or nothing (0) when it is of another category.
journal_errc journal_code(const caf::error& err) noexcept;

/// The detail string of a journal error (empty for other errors or none given).
std::string error_detail(const caf::error& err);

/// Renders an error of the journal category, e.g. "journal.no_space: <detail>".
std::string render_journal_error(std::uint8_t code, caf::atom_value, const caf::message& ctx);

/// Registers render_journal_error with an actor system, so journal errors print readably in
/// its logs. Call before the system starts.
void announce_journal_errors(caf::actor_system_config& cfg);

}  // namespace bastion::journal
