#include "runtime/journal/file_store_options.hpp"

#include "runtime/journal/errors.hpp"
#include "runtime/journal/record_format.hpp"

#include <string>

namespace bastion::journal {
namespace {

caf::error bad(const char* field, std::uint64_t value, const char* why) {
  return make_error(journal_errc::invalid_options,
                    std::string{field} + " = " + std::to_string(value) + ": " + why);
}

}  // namespace

caf::error validate(const file_store_options& opts) {
  constexpr std::uint64_t overhead = format::segment_header_bytes + format::record_header_bytes;
  if (opts.segment_bytes_max <= overhead) {
    return bad("segment_bytes_max", opts.segment_bytes_max,
               "must exceed one segment header plus one record header (64 bytes)");
  }
  if (opts.total_bytes_max < opts.segment_bytes_max) {
    return bad("total_bytes_max", opts.total_bytes_max, "must be at least segment_bytes_max");
  }
  if (opts.record_bytes_max == 0) {
    return bad("record_bytes_max", opts.record_bytes_max, "must be positive");
  }
  if (opts.queue_ops_max == 0) return bad("queue_ops_max", opts.queue_ops_max, "must be positive");
  if (opts.queue_bytes_max == 0) {
    return bad("queue_bytes_max", opts.queue_bytes_max, "must be positive");
  }
  if (opts.batch_ops_max == 0) return bad("batch_ops_max", opts.batch_ops_max, "must be positive");
  return caf::none;
}

}  // namespace bastion::journal
