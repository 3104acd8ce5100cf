#pragma once
// The journal's on-disk formats, all little-endian, every structure CRC32C-checked:
//
// Segment file "segment-<first index, 20 digits>.log":
//   segment header, 32 bytes:  magic "BSTNJSEG" | u32 version | u32 0 | u64 first_index |
//                              u32 0 | u32 crc32c(bytes 0..28)
//   then records back to back, each:
//   record header, 32 bytes:   u32 header_crc = crc32c(bytes 4..32) | u32 payload_crc |
//                              u64 index | u64 term | u32 payload_bytes | u8 type | 3 x u8 0
//   payload, payload_bytes bytes.
//   The header has its own CRC so a damaged length is never trusted: recovery can tell a torn
//   tail (nothing valid after the damage) from a damaged older record (valid records follow).
//
// Hard state file "hard_state", 32 bytes: magic "BSTNJHS1" | u64 term | u64 voted_for | u32 0 |
//   u32 crc32c(bytes 0..28). Replaced atomically (temp file, fsync, rename, fsync dir).
//
// Snapshot file "snapshot": a 64-byte header: magic "BSTNJSN1" | u64 index | u64 term |
//   u64 configuration_index | u64 configuration_bytes | u64 data_bytes | u32 body_crc |
//   u32 0 | u32 0 | u32 crc32c(bytes 0..60); then configuration bytes, then data bytes
//   (body_crc covers both). Replaced atomically like the hard state.

#include "runtime/journal/log_store.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bastion::journal::format {

constexpr std::uint32_t version = 1;
constexpr std::size_t segment_header_bytes = 32;
constexpr std::size_t record_header_bytes = 32;
constexpr std::size_t hard_state_bytes = 32;
constexpr std::size_t snapshot_header_bytes = 64;

// Little-endian scalars.
void put_u32(std::uint8_t* p, std::uint32_t v) noexcept;
void put_u64(std::uint8_t* p, std::uint64_t v) noexcept;
std::uint32_t get_u32(const std::uint8_t* p) noexcept;
std::uint64_t get_u64(const std::uint8_t* p) noexcept;

/// "segment-00000000000000000001.log" for first index 1.
std::string segment_file_name(std::uint64_t first_index);
/// The first index encoded in a segment file name, or nothing when `name` is not one.
std::optional<std::uint64_t> parse_segment_file_name(const std::string& name);

/// Appends a segment header to `out`.
void append_segment_header(std::vector<std::uint8_t>& out, std::uint64_t first_index);
/// The first index of a valid segment header at `p` (segment_header_bytes readable), or nothing
/// with `why` saying what is wrong.
std::optional<std::uint64_t> decode_segment_header(const std::uint8_t* p, std::string& why);

/// The size of an entry on disk.
inline std::uint64_t record_bytes(const log_entry& e) noexcept {
  return record_header_bytes + e.payload.size();
}
/// Appends one record (header + payload) to `out`.
/// REQUIRES: e.payload.size() fits in 32 bits (the store checks record_bytes_max first).
void append_record(std::vector<std::uint8_t>& out, std::uint64_t index, const log_entry& e);

struct record_header {
  std::uint32_t payload_crc = 0;
  std::uint64_t index = 0;
  std::uint64_t term = 0;
  std::uint32_t payload_bytes = 0;
  std::uint8_t type = 0;
};
/// The record header at `p` (record_header_bytes readable), or nothing when its CRC or its
/// reserved bytes are wrong, i.e. when nothing in it can be trusted.
std::optional<record_header> decode_record_header(const std::uint8_t* p) noexcept;

/// The hard-state file's bytes, and back (nothing + `why` when damaged).
std::vector<std::uint8_t> encode_hard_state(const hard_state& hs);
std::optional<hard_state> decode_hard_state(const std::vector<std::uint8_t>& bytes,
                                            std::string& why);

struct snapshot_header {
  std::uint64_t index = 0;
  std::uint64_t term = 0;
  std::uint64_t configuration_index = 0;
  std::uint64_t configuration_bytes = 0;
  std::uint64_t data_bytes = 0;
  std::uint32_t body_crc = 0;
};
/// The snapshot file's bytes (header, configuration, data).
std::vector<std::uint8_t> encode_snapshot(const snapshot& snap);
/// The snapshot header at `p` (snapshot_header_bytes readable), or nothing + `why`.
std::optional<snapshot_header> decode_snapshot_header(const std::uint8_t* p, std::string& why);

}  // namespace bastion::journal::format
