#include "runtime/journal/segment_scan.hpp"

#include "runtime/journal/crc32c.hpp"
#include "runtime/journal/errors.hpp"
#include "runtime/journal/record_format.hpp"

#include <algorithm>
#include <cstring>

namespace bastion::journal {
namespace {

constexpr std::size_t window_bytes = std::size_t{1} << 20;

// Reads of an open file through one window, so a scan costs a syscall per MiB, not per record.
class windowed_reader {
 public:
  windowed_reader(file_ops& ops, int fd, std::uint64_t file_bytes, const std::string& path)
      : ops_(ops), fd_(fd), file_bytes_(file_bytes), path_(path) {}

  // Copies [offset, offset + size) into `out`. REQUIRES: the range lies inside the file.
  caf::error read(std::uint64_t offset, std::size_t size, std::uint8_t* out) {
    if (size > window_bytes) return read_direct(offset, size, out);
    if (offset < start_ || offset + size > start_ + window_.size()) {
      const std::uint64_t len = std::min<std::uint64_t>(window_bytes, file_bytes_ - offset);
      window_.resize(static_cast<std::size_t>(len));
      std::size_t got = 0;
      if (auto rc = ops_.pread_full(fd_, window_.data(), window_.size(), offset, got)) {
        window_.clear();
        return make_io_error(rc, "read " + path_ + " at offset " + std::to_string(offset));
      }
      window_.resize(got);
      start_ = offset;
      if (got < size) return short_read(offset);
    }
    std::memcpy(out, window_.data() + (offset - start_), size);
    return caf::none;
  }

 private:
  caf::error read_direct(std::uint64_t offset, std::size_t size, std::uint8_t* out) {
    std::size_t got = 0;
    if (auto rc = ops_.pread_full(fd_, out, size, offset, got)) {
      return make_io_error(rc, "read " + path_ + " at offset " + std::to_string(offset));
    }
    return got == size ? caf::none : short_read(offset);
  }

  caf::error short_read(std::uint64_t offset) const {
    // The file shrank under us: someone else is writing the journal directory.
    return make_error(journal_errc::io_error, "read " + path_ + " at offset " +
                                                  std::to_string(offset) +
                                                  ": file shorter than when the scan began");
  }

  file_ops& ops_;
  int fd_;
  std::uint64_t file_bytes_;
  const std::string& path_;
  std::vector<std::uint8_t> window_;
  std::uint64_t start_ = 0;
};

class scanner {
 public:
  scanner(file_ops& ops, int fd, const std::string& path, bool is_last,
          std::uint32_t record_bytes_max, segment_scan& out)
      : reader_(ops, fd, out.file_bytes, path),
        is_last_(is_last),
        record_bytes_max_(record_bytes_max),
        out_(out) {}

  caf::error run(std::uint64_t name_first_index) {
    const std::uint64_t size = out_.file_bytes;
    if (size < format::segment_header_bytes) {
      return damaged(0, "file is " + std::to_string(size) + " bytes, shorter than its header",
                     true);
    }
    std::uint8_t h[format::segment_header_bytes];
    if (auto err = reader_.read(0, sizeof h, h)) return err;
    std::string why;
    auto first = format::decode_segment_header(h, why);
    if (!first) {
      bool zero_tail = false;
      if (auto err = rest_is_zero(0, zero_tail)) return err;
      return damaged(0, why, zero_tail);
    }
    if (*first != name_first_index) {
      return damaged(0,
                     "header says first index " + std::to_string(*first) + ", the file name says " +
                         std::to_string(name_first_index),
                     false);
    }
    out_.header_valid = true;
    out_.first_index = *first;
    std::uint64_t pos = format::segment_header_bytes;
    std::uint64_t expected = *first;
    out_.valid_bytes = pos;
    std::uint8_t rh[format::record_header_bytes];
    while (pos < size) {
      const std::uint64_t remaining = size - pos;
      if (remaining < format::record_header_bytes) {
        return damaged(pos, "partial record header (" + std::to_string(remaining) + " bytes)",
                       true);
      }
      if (auto err = reader_.read(pos, sizeof rh, rh)) return err;
      auto rec = format::decode_record_header(rh);
      if (!rec) {
        bool later_valid = false;
        if (auto err = valid_header_after(pos + 1, expected, later_valid)) return err;
        return damaged(pos,
                       later_valid ? "record header checksum mismatch, valid records follow"
                                   : "record header checksum mismatch, nothing valid after it",
                       !later_valid);
      }
      if (rec->index != expected) {
        return damaged(pos,
                       "record holds index " + std::to_string(rec->index) + ", expected " +
                           std::to_string(expected),
                       false);
      }
      if (rec->payload_bytes > record_bytes_max_) {
        return damaged(pos,
                       "record declares " + std::to_string(rec->payload_bytes) +
                           " payload bytes, over record_bytes_max " +
                           std::to_string(record_bytes_max_),
                       false);
      }
      const std::uint64_t body_left = remaining - format::record_header_bytes;
      if (rec->payload_bytes > body_left) {
        return damaged(pos,
                       "record declares " + std::to_string(rec->payload_bytes) +
                           " payload bytes, only " + std::to_string(body_left) + " remain",
                       true);
      }
      log_entry e;
      e.term = rec->term;
      e.type = rec->type;
      e.payload.resize(rec->payload_bytes);
      if (auto err =
              reader_.read(pos + format::record_header_bytes, e.payload.size(), e.payload.data())) {
        return err;
      }
      if (crc32c(e.payload.data(), e.payload.size()) != rec->payload_crc) {
        const bool ends_file = rec->payload_bytes == body_left;
        return damaged(pos,
                       ends_file ? "payload checksum mismatch in the last record"
                                 : "payload checksum mismatch",
                       ends_file);
      }
      out_.entries.push_back(std::move(e));
      out_.offsets.push_back(pos);
      pos += format::record_header_bytes + rec->payload_bytes;
      out_.valid_bytes = pos;
      ++expected;
    }
    out_.end = segment_end::clean;
    return caf::none;
  }

 private:
  // Records damage at `offset`: torn when it looks like a torn write and this is the last
  // segment, corrupt otherwise.
  caf::error damaged(std::uint64_t offset, std::string reason, bool looks_torn) {
    out_.end = looks_torn && is_last_ ? segment_end::torn : segment_end::corrupt;
    out_.bad_offset = offset;
    out_.reason = std::move(reason);
    return caf::none;
  }

  // Whether every byte from `from` to the end of the file is zero.
  caf::error rest_is_zero(std::uint64_t from, bool& zero) {
    zero = true;
    std::vector<std::uint8_t> buf;
    for (std::uint64_t pos = from; pos < out_.file_bytes && zero;) {
      const auto n =
          static_cast<std::size_t>(std::min<std::uint64_t>(window_bytes, out_.file_bytes - pos));
      buf.resize(n);
      if (auto err = reader_.read(pos, n, buf.data())) return err;
      zero = std::all_of(buf.begin(), buf.end(), [](std::uint8_t b) { return b == 0; });
      pos += n;
    }
    return caf::none;
  }

  // Whether a record header with a valid CRC, for index `expected` or later and a plausible
  // length, starts at any byte offset in [from, end of file). Slow (a CRC per byte) but runs
  // only when recovery meets a damaged header.
  caf::error valid_header_after(std::uint64_t from, std::uint64_t expected, bool& found) {
    found = false;
    const std::uint64_t size = out_.file_bytes;
    if (size < format::record_header_bytes) return caf::none;
    const std::uint64_t last_start = size - format::record_header_bytes;
    std::vector<std::uint8_t> buf;
    for (std::uint64_t pos = from; pos <= last_start && !found;) {
      const std::uint64_t starts =
          std::min<std::uint64_t>(window_bytes, last_start - pos + 1);  // header starts in chunk
      buf.resize(static_cast<std::size_t>(starts + format::record_header_bytes - 1));
      if (auto err = reader_.read(pos, buf.size(), buf.data())) return err;
      for (std::size_t i = 0; i < starts; ++i) {
        auto rec = format::decode_record_header(buf.data() + i);
        if (rec && rec->index >= expected && rec->payload_bytes <= record_bytes_max_) {
          found = true;
          break;
        }
      }
      pos += starts;
    }
    return caf::none;
  }

  windowed_reader reader_;
  bool is_last_;
  std::uint32_t record_bytes_max_;
  segment_scan& out_;
};

}  // namespace

caf::expected<segment_scan> scan_segment(file_ops& ops, const std::string& path,
                                         std::uint64_t name_first_index, bool is_last,
                                         std::uint32_t record_bytes_max) {
  int fd = -1;
  if (auto rc = ops.open(path, open_mode::read_only, fd)) {
    return make_io_error(rc, "open " + path);
  }
  segment_scan out;
  caf::error err;
  if (auto rc = ops.file_size(fd, out.file_bytes)) {
    err = make_io_error(rc, "stat " + path);
  } else {
    scanner s{ops, fd, path, is_last, record_bytes_max, out};
    err = s.run(name_first_index);
  }
  ops.close(fd);
  if (err) return err;
  return out;
}

}  // namespace bastion::journal
