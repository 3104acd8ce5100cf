#pragma once
// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every journal record.
// Uses the SSE4.2 crc32 instruction when the CPU has it (checked at run time), otherwise a
// slicing-by-8 table. Both give identical results; tests compare them on random inputs.
//
// Known answers: crc32c("123456789") = 0xE3069283, crc32c(32 zero bytes) = 0x8A9136AA.

#include <cstddef>
#include <cstdint>

namespace bastion::journal {

/// The CRC32C of `size` bytes at `data`, continuing from `crc` (the value returned for the
/// bytes before; 0 to start). crc32c(a+b) == crc32c_extend(crc32c(a), b).
std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t size) noexcept;

inline std::uint32_t crc32c(const void* data, std::size_t size) noexcept {
  return crc32c_extend(0, data, size);
}

/// The portable table-driven implementation (exposed so tests can compare both paths).
std::uint32_t crc32c_extend_portable(std::uint32_t crc, const void* data,
                                     std::size_t size) noexcept;

/// True when crc32c_extend uses the SSE4.2 instruction on this CPU.
bool crc32c_uses_hardware() noexcept;

}  // namespace bastion::journal
