// kernels/device/pci_address: matching CUDA ordinals to NVML indexes by PCI address, the way a
// node learns which nvidia-smi GPU a gpu worker's `device = N` is, whatever CUDA_VISIBLE_DEVICES
// and CUDA_DEVICE_ORDER renumbered.

#include "kernels/device/pci_address.hpp"

#include <catch2/catch.hpp>

using bastion::kernels::device::match_cuda_to_nvml;
using bastion::kernels::device::nvml_addresses;
using bastion::kernels::device::pci_address;

namespace {

pci_address at(std::uint32_t domain, std::uint32_t bus, std::uint32_t device = 0) {
  pci_address a;
  a.domain = domain;
  a.bus = bus;
  a.device = device;
  return a;
}

// Four GPUs as NVML (and nvidia-smi) number them: bus order.
nvml_addresses four_gpus() {
  nvml_addresses n;
  n.by_index = {{0, at(0, 0x18)}, {1, at(0, 0x3b)}, {2, at(0, 0x86)}, {3, at(0, 0xaf)}};
  return n;
}

}  // namespace

TEST_CASE("an address is written as sysfs writes it") {
  CHECK(to_string(at(0, 0x3b)) == "0000:3b:00.0");
  CHECK(to_string(at(0x1, 0xaf, 0x1f)) == "0001:af:1f.0");
}

TEST_CASE("CUDA_VISIBLE_DEVICES=2,3: CUDA ordinals 0 and 1 are nvidia-smi 2 and 3") {
  const auto m = match_cuda_to_nvml({{0, at(0, 0x86)}, {1, at(0, 0xaf)}}, four_gpus());
  REQUIRE(m.size() == 2);
  CHECK(m.at(0).nvml_index == 2u);
  CHECK(m.at(0).why_not.empty());
  CHECK(m.at(1).nvml_index == 3u);
}

TEST_CASE("fastest-first order is undone: every ordinal finds its own GPU") {
  const auto m = match_cuda_to_nvml(
      {{0, at(0, 0xaf)}, {1, at(0, 0x18)}, {2, at(0, 0x3b)}, {3, at(0, 0x86)}}, four_gpus());
  CHECK(m.at(0).nvml_index == 3u);
  CHECK(m.at(1).nvml_index == 0u);
  CHECK(m.at(2).nvml_index == 1u);
  CHECK(m.at(3).nvml_index == 2u);
}

TEST_CASE("domain, bus and slot all count, as numbers") {
  nvml_addresses n;
  n.by_index = {{0, at(0, 0x3b, 0)}, {1, at(1, 0x3b, 0)}, {2, at(0, 0x3b, 1)}};
  const auto m = match_cuda_to_nvml({{0, at(1, 0x3b)}, {1, at(0, 0x3b, 1)}, {2, at(0, 0x3b)}}, n);
  CHECK(m.at(0).nvml_index == 1u);
  CHECK(m.at(1).nvml_index == 2u);
  CHECK(m.at(2).nvml_index == 0u);
}

TEST_CASE("without NVML no ordinal is matched, and each says why") {
  nvml_addresses n;
  n.unavailable = "NVML not available: cannot load libnvidia-ml.so.1";
  const auto m = match_cuda_to_nvml({{0, at(0, 0x18)}, {1, at(0, 0x3b)}}, n);
  REQUIRE(m.size() == 2);
  for (const auto& [ordinal, match] : m) {
    CHECK_FALSE(match.nvml_index);
    CHECK(match.why_not == "NVML not available");
  }
}

TEST_CASE("a GPU NVML does not list is not found, never guessed") {
  const auto m = match_cuda_to_nvml({{0, at(0, 0x3b)}, {1, at(0, 0x5e)}}, four_gpus());
  CHECK(m.at(0).nvml_index == 1u);
  CHECK_FALSE(m.at(1).nvml_index);
  CHECK(m.at(1).why_not == "no NVML device at this PCI address");
  nvml_addresses none;
  CHECK(match_cuda_to_nvml({{0, at(0, 0x3b)}}, none).at(0).why_not == "NVML sees no device");
}

TEST_CASE("NVML devices without an address are named as the likely reason") {
  nvml_addresses old_driver;
  old_driver.by_index = {{0, std::nullopt}, {1, std::nullopt}};
  CHECK(match_cuda_to_nvml({{0, at(0, 0x18)}}, old_driver).at(0).why_not ==
        "NVML gives no PCI addresses");
  auto some = four_gpus();
  some.by_index[3] = std::nullopt;
  const auto m = match_cuda_to_nvml({{0, at(0, 0x86)}, {1, at(0, 0xaf)}}, some);
  CHECK(m.at(0).nvml_index == 2u);  // the others still match
  CHECK(m.at(1).why_not == "no NVML device at this PCI address (1 gave none)");
}

TEST_CASE("an address two NVML devices claim matches neither") {
  auto twice = four_gpus();
  twice.by_index[3] = at(0, 0x86);
  const auto m = match_cuda_to_nvml({{0, at(0, 0x86)}}, twice);
  CHECK_FALSE(m.at(0).nvml_index);
  CHECK(m.at(0).why_not == "more than one NVML device at this PCI address");
}
