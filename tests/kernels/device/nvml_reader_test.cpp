// nvml_reader against fake libnvidia-ml modules: the readings and their units, a sensor the
// board lacks, a lost GPU, and every way loading can fail (no library, no symbol, no driver),
// which must end in a note and no readings, never a crash.

#include "kernels/device/nvml_reader.hpp"
#include "tests/kernels/device/fake_nvml_control.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>

using bastion::kernels::status_code;
using bastion::kernels::device::default_nvml_library;
using bastion::kernels::device::nvml_reader;
using bastion::kernels::device::pci_address;
using bastion::testing::fake_nvml_control;

namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

TEST_CASE("the reader reads every device NVML sees, in the units the metrics publish") {
  fake_nvml_control fake{BASTION_FAKE_NVML};
  nvml_reader reader{BASTION_FAKE_NVML};
  REQUIRE(reader.available());
  CHECK(reader.note().empty());
  unsigned count = 0;
  REQUIRE(reader.device_count(count).is_ok());
  CHECK(count == 2);

  const auto h200 = reader.sample(0);
  CHECK(h200.index == 0);
  CHECK(h200.name == "Fake H200");
  CHECK(h200.temperature_celsius == 41.0);
  CHECK(h200.power_watts == Approx(123.456));  // NVML reports milliwatts
  CHECK(h200.utilization_ratio == Approx(0.37));
  CHECK(h200.memory_used_bytes == (std::uint64_t{2} << 30));
  CHECK(h200.memory_total_bytes == (std::uint64_t{141} << 30));
  CHECK(h200.errors.empty());
}

TEST_CASE("a reading the board lacks is empty and named, the others still come") {
  fake_nvml_control fake{BASTION_FAKE_NVML};
  nvml_reader reader{BASTION_FAKE_NVML};
  const auto l4 = reader.sample(1);
  CHECK(l4.name == "Fake L4");
  CHECK_FALSE(l4.temperature_celsius.has_value());
  REQUIRE(l4.errors.size() == 1);
  CHECK(l4.errors[0].reading == "temperature");
  CHECK(l4.errors[0].reason == "not_supported");
  CHECK(l4.errors[0].message == "Not Supported (NVML code 3)");
  CHECK(l4.power_watts == Approx(72.0));
  CHECK(l4.utilization_ratio == 0.0);
  CHECK(l4.memory_total_bytes == (std::uint64_t{24} << 30));

  fake.set_temperature(1, 63);  // readings are taken afresh on every sample
  const auto later = reader.sample(1);
  CHECK(later.temperature_celsius == 63.0);
  CHECK(later.errors.empty());
}

TEST_CASE("a lost GPU yields no readings and one gpu_is_lost error per reading") {
  fake_nvml_control fake{BASTION_FAKE_NVML};
  nvml_reader reader{BASTION_FAKE_NVML};
  fake.set_lost(0);
  const auto s = reader.sample(0);
  CHECK(s.name.empty());
  CHECK_FALSE(s.temperature_celsius);
  CHECK_FALSE(s.power_watts);
  CHECK_FALSE(s.utilization_ratio);
  CHECK_FALSE(s.memory_used_bytes);
  REQUIRE(s.errors.size() == 5);
  for (const auto& e : s.errors) CHECK(e.reason == "gpu_is_lost");
  CHECK(reader.sample(1).power_watts == Approx(72.0));  // the other device is unaffected
}

TEST_CASE("an index NVML does not know is an error on that sample, not a crash") {
  fake_nvml_control fake{BASTION_FAKE_NVML};
  nvml_reader reader{BASTION_FAKE_NVML};
  const auto s = reader.sample(7);
  REQUIRE(s.errors.size() == 1);
  CHECK(s.errors[0].reading == "device");
  CHECK(s.errors[0].reason == "nvml_error");
  CHECK_FALSE(s.power_watts);
}

TEST_CASE("the reader gives each device its PCI address from NVML's numbers") {
  fake_nvml_control fake{BASTION_FAKE_NVML};
  nvml_reader reader{BASTION_FAKE_NVML};
  CHECK(reader.pci_note().empty());
  pci_address a{};
  REQUIRE(reader.read_pci_address(0, a).is_ok());
  CHECK(to_string(a) == "0000:18:00.0");
  REQUIRE(reader.read_pci_address(1, a).is_ok());
  CHECK(a.domain == 1);
  CHECK(a.bus == 0xaf);
  CHECK(a.device == 0);
  fake.set_pci(1, 0x10000, 0x3b, 0x1f);  // a domain past 16 bits, as on some large hosts
  REQUIRE(reader.read_pci_address(1, a).is_ok());
  CHECK(a.domain == 0x10000);
  CHECK(a.bus == 0x3b);
  CHECK(a.device == 0x1f);
  CHECK(to_string(a) == "10000:3b:1f.0");
}

TEST_CASE("a PCI query NVML refuses is an error for that device only") {
  fake_nvml_control fake{BASTION_FAKE_NVML};
  nvml_reader reader{BASTION_FAKE_NVML};
  fake.set_pci_result(0, 3);
  pci_address a{7, 7, 7};
  const auto st = reader.read_pci_address(0, a);
  CHECK(st.code() == status_code::device_error);
  CHECK(st.message() == "nvmlDeviceGetPciInfo_v3 failed: Not Supported (NVML code 3)");
  CHECK(a == pci_address{});  // nothing half-read
  CHECK(reader.read_pci_address(1, a).is_ok());
  CHECK(reader.read_pci_address(9, a).code() == status_code::device_error);  // no such index
}

TEST_CASE("a library without the PCI query still reads everything else, and says so") {
  fake_nvml_control fake{BASTION_FAKE_NVML_NO_PCI};
  nvml_reader reader{BASTION_FAKE_NVML_NO_PCI};
  REQUIRE(reader.available());
  CHECK(reader.note().empty());
  CHECK(reader.pci_note() ==
        std::string{BASTION_FAKE_NVML_NO_PCI} +
            " has no nvmlDeviceGetPciInfo_v3 (an older driver): no PCI addresses");
  pci_address a{};
  const auto st = reader.read_pci_address(0, a);
  CHECK(st.code() == status_code::unsupported);
  CHECK(st.message() == reader.pci_note());
  CHECK(reader.sample(0).temperature_celsius == 41.0);
}

TEST_CASE("the reader shuts NVML down when it goes") {
  fake_nvml_control fake{BASTION_FAKE_NVML};
  {
    nvml_reader reader{BASTION_FAKE_NVML};
    CHECK(fake.live_inits() == 1);
  }
  CHECK(fake.live_inits() == 0);
}

TEST_CASE("no library: a note saying so, no devices, no crash") {
  nvml_reader reader{"/nonexistent/libnvidia-ml.so.1"};
  CHECK_FALSE(reader.available());
  CHECK(
      starts_with(reader.note(), "NVML not available: cannot load /nonexistent/libnvidia-ml.so.1"));
  unsigned count = 9;
  const auto st = reader.device_count(count);
  CHECK(count == 0);
  CHECK(st.code() == status_code::unsupported);
  CHECK(st.message() == reader.note());
  const auto s = reader.sample(0);
  CHECK_FALSE(s.power_watts);
  CHECK(s.errors.size() == 1);
  CHECK(reader.pci_note() == reader.note());
  pci_address a{};
  CHECK(reader.read_pci_address(0, a).code() == status_code::unsupported);
}

TEST_CASE("a library without an entry point is refused by name") {
  nvml_reader reader{BASTION_FAKE_NVML_PARTIAL};
  CHECK_FALSE(reader.available());
  CHECK(reader.note().find("has no nvmlDeviceGetUtilizationRates") != std::string::npos);
  CHECK(starts_with(reader.note(), "NVML not available: "));
}

TEST_CASE("NVML that will not start gives its reason") {
  nvml_reader reader{BASTION_FAKE_NVML_INIT_FAILS};
  CHECK_FALSE(reader.available());
  CHECK(reader.note() == "NVML not available: nvmlInit_v2 failed: Driver Not Loaded (NVML code 9)");
}

TEST_CASE("the default library is the driver's, unless the operator names another") {
  const char* before = std::getenv("BASTION_NVML_LIBRARY");
  const std::string saved = before ? before : "";
  ::unsetenv("BASTION_NVML_LIBRARY");
  CHECK(default_nvml_library() == "libnvidia-ml.so.1");
  ::setenv("BASTION_NVML_LIBRARY", "/opt/driver/libnvidia-ml.so.1", 1);
  CHECK(default_nvml_library() == "/opt/driver/libnvidia-ml.so.1");
  ::setenv("BASTION_NVML_LIBRARY", "", 1);  // set but empty: as if unset
  CHECK(default_nvml_library() == "libnvidia-ml.so.1");
  if (before)
    ::setenv("BASTION_NVML_LIBRARY", saved.c_str(), 1);
  else
    ::unsetenv("BASTION_NVML_LIBRARY");
}
