#pragma once
// Recovery of one segment file: reads its records in order, checking each header and payload
// CRC and that indexes are contiguous, and says how the valid prefix ends. It only reads; the
// store decides what to do with a torn or damaged end (truncate, refuse, repair).
//
// How an end is classified (only the LAST segment of a log can have a torn end):
// - torn:    a partial record header; a valid header whose payload runs past the end of the
//            file; a payload CRC mismatch in the record that ends exactly at the end of the
//            file; or a header CRC mismatch with no valid record header for this or a later
//            index anywhere after it (e.g. a zero-filled tail). All are what a crash in the
//            middle of an unsynced write leaves behind.
// - corrupt: anything else: a damaged record with valid records after it, a record with the
//            wrong index, a length over record_bytes_max in a header whose CRC is valid, a
//            damaged segment header, any damage in a segment that is not the last.
// A record's memory is allocated only after its header checked out and its length fits both
// record_bytes_max and the bytes left in the file.

#include "runtime/journal/file_ops.hpp"
#include "runtime/journal/log_store.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace bastion::journal {

enum class segment_end : std::uint8_t {
  clean,    // the file ends after a whole valid record (or after the header)
  torn,     // see above; the store truncates at bad_offset
  corrupt,  // see above; the store refuses, or truncates at bad_offset when repairing
};

struct segment_scan {
  std::uint64_t file_bytes = 0;        // size of the file as found
  bool header_valid = false;           // false: bad_offset is 0
  std::uint64_t first_index = 0;       // from the header (when valid)
  std::vector<log_entry> entries;      // the valid prefix
  std::vector<std::uint64_t> offsets;  // byte offset of each entry's record
  std::uint64_t valid_bytes = 0;       // where the valid prefix ends
  segment_end end = segment_end::clean;
  std::uint64_t bad_offset = 0;  // for torn / corrupt: where the damage starts
  std::string reason;            // for torn / corrupt: what was found there
};

/// Scans `path`, whose file name says it starts at `name_first_index`. `is_last`: whether it is
/// the log's last segment (only there is damage classified as torn). Fails only when the file
/// cannot be read.
caf::expected<segment_scan> scan_segment(file_ops& ops, const std::string& path,
                                         std::uint64_t name_first_index, bool is_last,
                                         std::uint32_t record_bytes_max);

}  // namespace bastion::journal
