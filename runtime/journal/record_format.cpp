#include "runtime/journal/record_format.hpp"

#include "runtime/journal/crc32c.hpp"

#include <cassert>
#include <cstdio>
#include <cstring>
#include <limits>

namespace bastion::journal::format {
namespace {

constexpr char segment_magic[8] = {'B', 'S', 'T', 'N', 'J', 'S', 'E', 'G'};
constexpr char hard_state_magic[8] = {'B', 'S', 'T', 'N', 'J', 'H', 'S', '1'};
constexpr char snapshot_magic[8] = {'B', 'S', 'T', 'N', 'J', 'S', 'N', '1'};
constexpr const char* segment_prefix = "segment-";
constexpr const char* segment_suffix = ".log";
constexpr std::size_t segment_digits = 20;

bool all_zero(const std::uint8_t* p, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

}  // namespace

void put_u32(std::uint8_t* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

void put_u64(std::uint8_t* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

std::uint32_t get_u32(const std::uint8_t* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::uint64_t get_u64(const std::uint8_t* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string segment_file_name(std::uint64_t first_index) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%020llu%s", segment_prefix,
                static_cast<unsigned long long>(first_index), segment_suffix);
  return buf;
}

std::optional<std::uint64_t> parse_segment_file_name(const std::string& name) {
  const std::size_t prefix_len = std::strlen(segment_prefix);
  const std::size_t suffix_len = std::strlen(segment_suffix);
  if (name.size() != prefix_len + segment_digits + suffix_len) return std::nullopt;
  if (name.compare(0, prefix_len, segment_prefix) != 0) return std::nullopt;
  if (name.compare(prefix_len + segment_digits, suffix_len, segment_suffix) != 0) {
    return std::nullopt;
  }
  std::uint64_t v = 0;
  for (std::size_t i = prefix_len; i < prefix_len + segment_digits; ++i) {
    const char c = name[i];
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  if (v == 0) return std::nullopt;  // indexes start at 1
  return v;
}

void append_segment_header(std::vector<std::uint8_t>& out, std::uint64_t first_index) {
  std::uint8_t h[segment_header_bytes] = {};
  std::memcpy(h, segment_magic, 8);
  put_u32(h + 8, version);
  put_u64(h + 16, first_index);
  put_u32(h + 28, crc32c(h, 28));
  out.insert(out.end(), h, h + segment_header_bytes);
}

std::optional<std::uint64_t> decode_segment_header(const std::uint8_t* p, std::string& why) {
  if (std::memcmp(p, segment_magic, 8) != 0) {
    why = all_zero(p, segment_header_bytes) ? "segment header is all zero bytes"
                                            : "not a journal segment (bad magic)";
    return std::nullopt;
  }
  if (get_u32(p + 28) != crc32c(p, 28)) {
    why = "segment header checksum mismatch";
    return std::nullopt;
  }
  if (get_u32(p + 8) != version) {
    why = "unsupported segment format version " + std::to_string(get_u32(p + 8));
    return std::nullopt;
  }
  return get_u64(p + 16);
}

void append_record(std::vector<std::uint8_t>& out, std::uint64_t index, const log_entry& e) {
  assert(e.payload.size() <= std::numeric_limits<std::uint32_t>::max());
  std::uint8_t h[record_header_bytes] = {};
  put_u32(h + 4, crc32c(e.payload.data(), e.payload.size()));
  put_u64(h + 8, index);
  put_u64(h + 16, e.term);
  put_u32(h + 24, static_cast<std::uint32_t>(e.payload.size()));
  h[28] = e.type;
  put_u32(h, crc32c(h + 4, record_header_bytes - 4));
  out.insert(out.end(), h, h + record_header_bytes);
  out.insert(out.end(), e.payload.begin(), e.payload.end());
}

std::optional<record_header> decode_record_header(const std::uint8_t* p) noexcept {
  if (get_u32(p) != crc32c(p + 4, record_header_bytes - 4)) return std::nullopt;
  if (p[29] != 0 || p[30] != 0 || p[31] != 0) return std::nullopt;
  record_header h;
  h.payload_crc = get_u32(p + 4);
  h.index = get_u64(p + 8);
  h.term = get_u64(p + 16);
  h.payload_bytes = get_u32(p + 24);
  h.type = p[28];
  return h;
}

std::vector<std::uint8_t> encode_hard_state(const hard_state& hs) {
  std::vector<std::uint8_t> out(hard_state_bytes, 0);
  std::memcpy(out.data(), hard_state_magic, 8);
  put_u64(out.data() + 8, hs.term);
  put_u64(out.data() + 16, hs.voted_for);
  put_u32(out.data() + 28, crc32c(out.data(), 28));
  return out;
}

std::optional<hard_state> decode_hard_state(const std::vector<std::uint8_t>& bytes,
                                            std::string& why) {
  if (bytes.size() != hard_state_bytes) {
    why = "size " + std::to_string(bytes.size()) + " bytes, expected " +
          std::to_string(hard_state_bytes);
    return std::nullopt;
  }
  const std::uint8_t* p = bytes.data();
  if (std::memcmp(p, hard_state_magic, 8) != 0) {
    why = "not a hard-state file (bad magic)";
    return std::nullopt;
  }
  if (get_u32(p + 28) != crc32c(p, 28) || get_u32(p + 24) != 0) {
    why = "hard-state checksum mismatch";
    return std::nullopt;
  }
  return hard_state{get_u64(p + 8), get_u64(p + 16)};
}

std::vector<std::uint8_t> encode_snapshot(const snapshot& snap) {
  std::vector<std::uint8_t> out(snapshot_header_bytes, 0);
  out.reserve(snapshot_header_bytes + snap.configuration.size() + snap.data.size());
  std::uint8_t* h = out.data();
  std::memcpy(h, snapshot_magic, 8);
  put_u64(h + 8, snap.index);
  put_u64(h + 16, snap.term);
  put_u64(h + 24, snap.configuration_index);
  put_u64(h + 32, snap.configuration.size());
  put_u64(h + 40, snap.data.size());
  std::uint32_t body = crc32c(snap.configuration.data(), snap.configuration.size());
  body = crc32c_extend(body, snap.data.data(), snap.data.size());
  put_u32(h + 48, body);
  put_u32(h + 60, crc32c(h, 60));
  out.insert(out.end(), snap.configuration.begin(), snap.configuration.end());
  out.insert(out.end(), snap.data.begin(), snap.data.end());
  return out;
}

std::optional<snapshot_header> decode_snapshot_header(const std::uint8_t* p, std::string& why) {
  if (std::memcmp(p, snapshot_magic, 8) != 0) {
    why = "not a snapshot file (bad magic)";
    return std::nullopt;
  }
  if (get_u32(p + 60) != crc32c(p, 60) || get_u32(p + 52) != 0 || get_u32(p + 56) != 0) {
    why = "snapshot header checksum mismatch";
    return std::nullopt;
  }
  snapshot_header h;
  h.index = get_u64(p + 8);
  h.term = get_u64(p + 16);
  h.configuration_index = get_u64(p + 24);
  h.configuration_bytes = get_u64(p + 32);
  h.data_bytes = get_u64(p + 40);
  h.body_crc = get_u32(p + 48);
  return h;
}

}  // namespace bastion::journal::format
