// cluster/cuda_device_order: what bastion-node does about CUDA_DEVICE_ORDER so that a gpu
// worker's device N and the GPU metrics' device="N" (NVML, PCI bus order) are the same GPU.

#include "cluster/cuda_device_order.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

using bastion::cluster::decide_cuda_device_order;
using bastion::cluster::describe_cuda_visible_devices;

TEST_CASE("an unset CUDA_DEVICE_ORDER becomes PCI_BUS_ID, said once") {
  for (const char* unset : {static_cast<const char*>(nullptr), ""}) {
    const auto d = decide_cuda_device_order(unset);
    CHECK(d.set_pci_bus_id);
    CHECK_FALSE(d.warn);
    CHECK_THAT(d.message, Catch::Contains("set to PCI_BUS_ID") && Catch::Contains("nvidia-smi"));
  }
}

TEST_CASE("CUDA_DEVICE_ORDER=PCI_BUS_ID is left alone without a word") {
  const auto d = decide_cuda_device_order("PCI_BUS_ID");
  CHECK_FALSE(d.set_pci_bus_id);
  CHECK_FALSE(d.warn);
  CHECK(d.message.empty());
}

TEST_CASE("another CUDA_DEVICE_ORDER is kept with a warning that labels may not match") {
  for (const char* other : {"FASTEST_FIRST", "BUS_ORDER"}) {
    const auto d = decide_cuda_device_order(other);
    CHECK_FALSE(d.set_pci_bus_id);
    CHECK(d.warn);
    CHECK_THAT(d.message, Catch::StartsWith("warning: CUDA_DEVICE_ORDER=" + std::string{other}) &&
                              Catch::Contains("bastion_gpu_*"));
  }
}

TEST_CASE("aligning the order sets the variable only when it was unset") {
  const char* before = std::getenv("CUDA_DEVICE_ORDER");
  const std::string saved = before ? before : "";
  ::unsetenv("CUDA_DEVICE_ORDER");
  CHECK(bastion::cluster::align_cuda_device_order().set_pci_bus_id);
  REQUIRE(std::getenv("CUDA_DEVICE_ORDER") != nullptr);
  CHECK(std::string{std::getenv("CUDA_DEVICE_ORDER")} == "PCI_BUS_ID");
  ::setenv("CUDA_DEVICE_ORDER", "FASTEST_FIRST", 1);
  CHECK(bastion::cluster::align_cuda_device_order().warn);
  CHECK(std::string{std::getenv("CUDA_DEVICE_ORDER")} == "FASTEST_FIRST");
  if (before)
    ::setenv("CUDA_DEVICE_ORDER", saved.c_str(), 1);
  else
    ::unsetenv("CUDA_DEVICE_ORDER");
}

TEST_CASE("an unset CUDA_VISIBLE_DEVICES is not remarked on") {
  CHECK(describe_cuda_visible_devices(nullptr).empty());
}

TEST_CASE("a set CUDA_VISIBLE_DEVICES is said to renumber worker devices within its list") {
  for (const char* list : {"2,3", "GPU-5f1c2a3b-0000-1111-2222-333344445555", "0"}) {
    const auto line = describe_cuda_visible_devices(list);
    CHECK_THAT(line, Catch::StartsWith("CUDA_VISIBLE_DEVICES=" + std::string{list} + ": ") &&
                         Catch::Contains("device N is the Nth GPU in that list") &&
                         Catch::Contains("not the GPU nvidia-smi calls N") &&
                         Catch::Contains("PCI address"));
  }
}

TEST_CASE("an empty CUDA_VISIBLE_DEVICES hides every GPU, with a warning") {
  for (const char* empty : {"", "  "}) {
    CHECK_THAT(describe_cuda_visible_devices(empty),
               Catch::StartsWith("warning: CUDA_VISIBLE_DEVICES is set but empty") &&
                   Catch::Contains("CUDA sees no GPU"));
  }
}
