// CRC32C: the published check values, and the SSE4.2 path agreeing with the table path.

#include "runtime/journal/crc32c.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <vector>

using bastion::journal::crc32c;
using bastion::journal::crc32c_extend;
using bastion::journal::crc32c_extend_portable;

TEST_CASE("crc32c matches the standard check values") {
  const char* digits = "123456789";
  CHECK(crc32c(digits, 9) == 0xE3069283u);
  CHECK(crc32c_extend_portable(0, digits, 9) == 0xE3069283u);
  const std::vector<std::uint8_t> zeros(32, 0);
  CHECK(crc32c(zeros.data(), zeros.size()) == 0x8A9136AAu);
  CHECK(crc32c_extend_portable(0, zeros.data(), zeros.size()) == 0x8A9136AAu);
  const std::vector<std::uint8_t> ones(32, 0xFF);  // RFC 3720 B.4
  CHECK(crc32c(ones.data(), ones.size()) == 0x62A8AB43u);
  CHECK(crc32c(nullptr, 0) == 0u);
  INFO("hardware path in use: " << bastion::journal::crc32c_uses_hardware());
}

TEST_CASE("crc32c hardware and table paths agree at every length and alignment") {
  std::mt19937 rng{20240601};
  std::vector<std::uint8_t> buf(4096 + 16);
  for (auto& b : buf) b = static_cast<std::uint8_t>(rng());
  for (std::size_t offset = 0; offset < 8; ++offset) {
    for (std::size_t len = 0; len < 300; ++len) {
      INFO("offset " << offset << " length " << len);
      REQUIRE(crc32c(buf.data() + offset, len) ==
              crc32c_extend_portable(0, buf.data() + offset, len));
    }
  }
  CHECK(crc32c(buf.data(), 4096) == crc32c_extend_portable(0, buf.data(), 4096));
}

TEST_CASE("crc32c_extend over pieces equals crc32c over the whole") {
  std::vector<std::uint8_t> buf(1000);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<std::uint8_t>(i * 13);
  const auto whole = crc32c(buf.data(), buf.size());
  for (std::size_t cut : {0u, 1u, 7u, 8u, 500u, 999u, 1000u}) {
    CHECK(crc32c_extend(crc32c(buf.data(), cut), buf.data() + cut, buf.size() - cut) == whole);
  }
  buf[321] ^= 0x10;
  CHECK(crc32c(buf.data(), buf.size()) != whole);
}
