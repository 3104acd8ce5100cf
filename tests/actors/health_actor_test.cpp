// health_actor on CAF's deterministic test coordinator (its own runner, not Catch2): the
// actor answers its typed request with the identity it was given and uptime from the
// injected clock, so the answer is exact; and it samples the GPUs of a fake NVML
// (tests/kernels/device/fake_nvml.cpp: two devices, the second without a temperature sensor)
// into the metrics registry at start and then every interval, on CAF's test clock. CUDA devices
// are handed in as listed (no GPU here), to check that each is matched to the NVML device at the
// same PCI address whatever CUDA numbered it.

#define CAF_SUITE health_actor

#include "actors/health_actor.hpp"
#include "tests/kernels/device/fake_nvml_control.hpp"

#include <caf/test/dsl.hpp>
#include <caf/test/unit_test_impl.hpp>

#include <string>

using namespace bastion;
using namespace bastion::actors;

namespace {

constexpr std::chrono::milliseconds interval{5000};

device_sampling sampling(metrics::registry* registry, std::chrono::milliseconds every,
                         const std::string& nvml_library) {
  device_sampling out;
  out.registry = registry;
  out.interval = every;
  out.nvml_library = nvml_library;
  return out;
}

kernels::device::pci_address pci(std::uint32_t domain, std::uint32_t bus) {
  kernels::device::pci_address a;
  a.domain = domain;
  a.bus = bus;
  return a;
}

// A CUDA device as list_devices would report it.
kernels::device::device_info cuda_gpu(int ordinal, const std::string& name,
                                      kernels::device::pci_address at, int major, int minor,
                                      std::size_t gib) {
  kernels::device::device_info d;
  d.ordinal = ordinal;
  d.name = name;
  d.compute_major = major;
  d.compute_minor = minor;
  d.memory_bytes = gib << 30;
  d.pci = at;
  return d;
}

// The fake NVML's two GPUs as CUDA lists them, at its addresses (fake_nvml.cpp).
kernels::device::device_info fake_h200(int ordinal) {
  return cuda_gpu(ordinal, "NVIDIA H200", pci(0, 0x18), 9, 0, 140);
}
kernels::device::device_info fake_l4(int ordinal) {
  return cuda_gpu(ordinal, "NVIDIA L4", pci(1, 0xaf), 8, 9, 22);
}

// The value of one series in the Prometheus text, e.g. `bastion_gpu_power_watts{device="1"}`;
// "absent" when there is no such series.
std::string series(const std::string& text, const std::string& name) {
  const std::string prefix = name + ' ';
  for (std::size_t at = 0; at < text.size();) {
    const auto end = text.find('\n', at);
    const std::string line = text.substr(at, end - at);
    if (line.compare(0, prefix.size(), prefix) == 0) return line.substr(prefix.size());
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return "absent";
}

struct fixture : test_coordinator_fixture<> {
  manual_clock clock{std::chrono::seconds{100}};
  metrics::registry registry;
  testing::fake_nvml_control fake{BASTION_FAKE_NVML};
  health_actor health;

  fixture() { health = spawn_health(BASTION_FAKE_NVML, interval); }
  ~fixture() {
    caf::anon_send_exit(health, caf::exit_reason::user_shutdown);  // before the registry goes
    sched.run();
  }

  health_actor spawn_health(const std::string& nvml_library, std::chrono::milliseconds every) {
    auto h = sys.spawn(health_actor_impl, node_identity{"teller-1", "dr-local"}, &clock,
                       sampling(&registry, every, nvml_library));
    sched.run();  // the first sample; sched.run() fires no timer (the fixture's run() would,
                  // forever: sampling re-arms itself)
    return h;
  }

  // Sends the typed request, lets the deterministic scheduler deliver it, and takes the reply.
  node_health ask(const health_actor& who) {
    node_health out;
    auto handle = self->request(who, caf::infinite, get_health_atom::value);
    sched.run();
    handle.receive([&](node_health& h) { out = std::move(h); },
                   [&](caf::error& err) { CAF_FAIL(sys.render(err)); });
    return out;
  }
  node_health ask() { return ask(health); }

  // Stops the fixture's actor and fires its planned round (at a dead actor), so the test
  // clock holds only what the actors a test spawns itself plan.
  void stop_fixture_actor() {
    caf::anon_send_exit(health, caf::exit_reason::user_shutdown);
    sched.run();
    sched.trigger_timeouts();
    sched.run();
  }

  std::string metric(const std::string& name) { return series(registry.render_prometheus(), name); }

  // An actor of the test's own (the fixture's stopped first), named `name`, that samples into
  // `reg` and lists `cuda` as its CUDA devices; it has taken its first sample (if it samples).
  health_actor spawn_listing(metrics::registry& reg, std::chrono::milliseconds every,
                             const std::string& nvml_library,
                             std::vector<kernels::device::device_info> cuda,
                             const std::string& name) {
    stop_fixture_actor();
    auto s = sampling(&reg, every, nvml_library);
    s.cuda_listing = std::move(cuda);
    auto h = sys.spawn(health_actor_impl, node_identity{name, "prod"}, &clock, s);
    sched.run();
    return h;
  }
  void stop(const health_actor& h) {
    caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
    sched.run();
  }
};

}  // namespace

CAF_TEST_FIXTURE_SCOPE(health_actor_tests, fixture)

CAF_TEST(answers with its identity and exact uptime from the injected clock) {
  clock.advance(std::chrono::milliseconds{1500});
  auto h = ask();
  CAF_CHECK_EQUAL(h.node, "teller-1");
  CAF_CHECK_EQUAL(h.site, "dr-local");
  CAF_CHECK_EQUAL(h.uptime_ms, 1500u);
  CAF_CHECK(h.cpu_gemm == "openblas" || h.cpu_gemm == "builtin");
  // With no device, the actor must say why instead of listing nothing silently.
  if (h.devices.empty()) CAF_CHECK(!h.devices_note.empty());
}

CAF_TEST(uptime follows the clock between requests) {
  clock.advance(std::chrono::milliseconds{10});
  auto first = ask();
  clock.advance(std::chrono::milliseconds{250});
  auto second = ask();
  CAF_CHECK_EQUAL(second.uptime_ms - first.uptime_ms, 250u);
}

CAF_TEST(every NVML device is published with a device label at start) {
  CAF_CHECK_EQUAL(
      metric("bastion_gpu_info{device=\"0\",name=\"Fake H200\",pci_bus_id=\"0000:18:00.0\"}"), "1");
  CAF_CHECK_EQUAL(
      metric("bastion_gpu_info{device=\"1\",name=\"Fake L4\",pci_bus_id=\"0001:af:00.0\"}"), "1");
  CAF_CHECK_EQUAL(metric("bastion_gpu_temperature_celsius{device=\"0\"}"), "41");
  CAF_CHECK_EQUAL(metric("bastion_gpu_power_watts{device=\"0\"}"), "123.456");
  CAF_CHECK_EQUAL(metric("bastion_gpu_power_watts{device=\"1\"}"), "72");
  CAF_CHECK_EQUAL(metric("bastion_gpu_utilization_ratio{device=\"0\"}"), "0.37");
  CAF_CHECK_EQUAL(metric("bastion_gpu_memory_used_bytes{device=\"0\"}"),
                  std::to_string(std::uint64_t{2} << 30));
  CAF_CHECK_EQUAL(metric("bastion_gpu_memory_total_bytes{device=\"1\"}"),
                  std::to_string(std::uint64_t{24} << 30));
  // The L4 has no temperature sensor: no series for it, and the refusal is counted.
  CAF_CHECK_EQUAL(metric("bastion_gpu_temperature_celsius{device=\"1\"}"), "absent");
  CAF_CHECK_EQUAL(
      metric("bastion_gpu_sample_errors_total{device=\"1\",reading=\"temperature\",reason=\"not_"
             "supported\"}"),
      "1");
  CAF_CHECK_EQUAL(ask().device_sampling_note, "");
}

CAF_TEST(devices are sampled again once the interval has passed and not before) {
  fake.set_temperature(1, 55);
  CAF_CHECK_EQUAL(sched.advance_time(interval - std::chrono::milliseconds{1}), 0u);
  sched.run();
  CAF_CHECK_EQUAL(metric("bastion_gpu_temperature_celsius{device=\"1\"}"), "absent");
  CAF_CHECK_EQUAL(sched.advance_time(std::chrono::milliseconds{1}), 1u);
  sched.run();
  CAF_CHECK_EQUAL(metric("bastion_gpu_temperature_celsius{device=\"1\"}"), "55");
  // The refusal of the first sample stays counted; the second sample was not refused.
  CAF_CHECK_EQUAL(
      metric("bastion_gpu_sample_errors_total{device=\"1\",reading=\"temperature\",reason=\"not_"
             "supported\"}"),
      "1");
  // And the next round follows one interval later.
  CAF_CHECK_EQUAL(sched.advance_time(interval), 1u);
}

CAF_TEST(a reading that fails after working reads NaN instead of its last value) {
  fake.set_lost(0);
  CAF_REQUIRE(sched.trigger_timeout());
  sched.run();
  CAF_CHECK_EQUAL(metric("bastion_gpu_temperature_celsius{device=\"0\"}"), "NaN");
  CAF_CHECK_EQUAL(metric("bastion_gpu_power_watts{device=\"0\"}"), "NaN");
  CAF_CHECK_EQUAL(metric("bastion_gpu_memory_total_bytes{device=\"0\"}"), "NaN");
  CAF_CHECK_EQUAL(
      metric("bastion_gpu_sample_errors_total{device=\"0\",reading=\"power\",reason=\"gpu_is_"
             "lost\"}"),
      "1");
  CAF_CHECK_EQUAL(metric("bastion_gpu_power_watts{device=\"1\"}"), "72");  // unaffected
}

CAF_TEST(the actor shuts NVML down when it exits) {
  CAF_CHECK_EQUAL(fake.live_inits(), 1);
  caf::anon_send_exit(health, caf::exit_reason::user_shutdown);
  sched.run();
  CAF_CHECK_EQUAL(fake.live_inits(), 0);
}

CAF_TEST(without NVML the health answer says why and no GPU series appears) {
  stop_fixture_actor();
  metrics::registry clean;
  auto lone = sys.spawn(health_actor_impl, node_identity{"teller-2", "prod"}, &clock,
                        sampling(&clean, interval, "/nonexistent/libnvidia-ml.so.1"));
  sched.run();
  clock.advance(std::chrono::milliseconds{20});
  const auto h = ask(lone);
  CAF_CHECK_EQUAL(h.node, "teller-2");
  CAF_CHECK_EQUAL(h.uptime_ms, 20u);  // the node's health is otherwise unaffected
  CAF_CHECK_EQUAL(
      h.device_sampling_note.rfind("NVML not available: cannot load /nonexistent/libnvidia-ml", 0),
      0u);
  CAF_CHECK_EQUAL(clean.render_prometheus().find("bastion_gpu_"), std::string::npos);
  // Nothing left to sample (no NVML, and no CUDA device here): no further rounds are planned.
  if (h.devices.empty()) CAF_CHECK(!sched.clock().has_pending_timeout());
  caf::anon_send_exit(lone, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST(NVML that will not start is reported with its reason) {
  auto h = spawn_health(BASTION_FAKE_NVML_INIT_FAILS, interval);
  CAF_CHECK_EQUAL(ask(h).device_sampling_note,
                  "NVML not available: nvmlInit_v2 failed: Driver Not Loaded (NVML code 9)");
  caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST(a zero interval or no registry turns sampling off) {
  stop_fixture_actor();
  metrics::registry clean;
  auto off = sys.spawn(health_actor_impl, node_identity{"teller-3", "prod"}, &clock,
                       sampling(&clean, std::chrono::milliseconds{0}, BASTION_FAKE_NVML));
  sched.run();
  CAF_CHECK_EQUAL(ask(off).device_sampling_note, "device sampling off: node.device_sample_ms = 0");
  CAF_CHECK_EQUAL(fake.live_inits(), 0);  // NVML was never even loaded
  CAF_CHECK(!sched.clock().has_pending_timeout());
  auto unregistered = sys.spawn(health_actor_impl, node_identity{"teller-4", "prod"}, &clock,
                                sampling(nullptr, interval, BASTION_FAKE_NVML));
  sched.run();
  CAF_CHECK_EQUAL(ask(unregistered).device_sampling_note,
                  "device sampling off: no metrics registry");
  CAF_CHECK(!sched.clock().has_pending_timeout());
  caf::anon_send_exit(off, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(unregistered, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST(CUDA devices renumbered by CUDA_VISIBLE_DEVICES are matched to NVML by PCI address) {
  // As with CUDA_VISIBLE_DEVICES=1,0: CUDA's ordinal 0 is the GPU NVML calls 1, and 1 is 0.
  auto h =
      spawn_listing(registry, interval, BASTION_FAKE_NVML, {fake_l4(0), fake_h200(1)}, "teller-5");
  const auto facts = ask(h);
  CAF_REQUIRE_EQUAL(facts.devices.size(), 2u);
  CAF_CHECK_EQUAL(facts.devices[0],
                  "cuda:0 NVIDIA L4 (sm_89, 22 GiB, PCI 0001:af:00.0, nvidia-smi 1)");
  CAF_CHECK_EQUAL(facts.devices[1],
                  "cuda:1 NVIDIA H200 (sm_90, 140 GiB, PCI 0000:18:00.0, nvidia-smi 0)");
  CAF_CHECK_EQUAL(facts.devices_note, "");
  CAF_CHECK_EQUAL(facts.device_sampling_note, "");
  stop(h);
}

CAF_TEST(a CUDA device NVML does not list says so instead of taking another number) {
  auto h = spawn_listing(registry, interval, BASTION_FAKE_NVML,
                         {cuda_gpu(0, "NVIDIA H200", pci(0, 0x3b), 9, 0, 140)}, "teller-6");
  const auto answer = ask(h);
  CAF_REQUIRE_EQUAL(answer.devices.size(), 1u);
  CAF_CHECK_EQUAL(answer.devices[0],
                  "cuda:0 NVIDIA H200 (sm_90, 140 GiB, PCI 0000:3b:00.0, no nvidia-smi index: no "
                  "NVML device at this PCI address)");
  stop(h);
}

CAF_TEST(without NVML the CUDA device lines say why they have no NVML index) {
  metrics::registry clean;
  auto h =
      spawn_listing(clean, interval, "/nonexistent/libnvidia-ml.so.1", {fake_h200(0)}, "teller-7");
  const auto answer = ask(h);
  CAF_REQUIRE_EQUAL(answer.devices.size(), 1u);
  CAF_CHECK_EQUAL(answer.devices[0],
                  "cuda:0 NVIDIA H200 (sm_90, 140 GiB, PCI 0000:18:00.0, no nvidia-smi index: "
                  "NVML not available)");
  stop(h);
}

CAF_TEST(before the first sample a CUDA device line ends at its PCI address) {
  auto h =
      spawn_listing(registry, std::chrono::milliseconds{0}, BASTION_FAKE_NVML,  // never samples
                    {fake_h200(0)}, "teller-8");
  const auto answer = ask(h);
  CAF_REQUIRE_EQUAL(answer.devices.size(), 1u);
  CAF_CHECK_EQUAL(answer.devices[0], "cuda:0 NVIDIA H200 (sm_90, 140 GiB, PCI 0000:18:00.0)");
  stop(h);
}

CAF_TEST(the NVML addresses are read once and kept so label sets never change) {
  metrics::registry clean;
  auto h = spawn_listing(clean, interval, BASTION_FAKE_NVML, {fake_l4(0)}, "teller-9");
  fake.set_pci(1, 0, 0x5e, 0);  // NVML now claims another address: not read again
  fake.set_pci_result(0, 3);
  CAF_REQUIRE(sched.trigger_timeout());
  sched.run();
  const auto text = clean.render_prometheus();
  CAF_CHECK_EQUAL(
      series(text, "bastion_gpu_info{device=\"1\",name=\"Fake L4\",pci_bus_id=\"0001:af:00.0\"}"),
      "1");
  CAF_CHECK_EQUAL(text.find("0000:5e:00.0"), std::string::npos);
  CAF_CHECK_EQUAL(
      series(text, "bastion_gpu_info{device=\"0\",name=\"Fake H200\",pci_bus_id=\"0000:18:00.0\"}"),
      "1");
  const auto answer = ask(h);
  CAF_REQUIRE_EQUAL(answer.devices.size(), 1u);
  CAF_CHECK_EQUAL(answer.devices[0],
                  "cuda:0 NVIDIA L4 (sm_89, 22 GiB, PCI 0001:af:00.0, nvidia-smi 1)");
  stop(h);
}

CAF_TEST(an NVML device without an address has no pci_bus_id label and a note says why) {
  fake.set_pci_result(1, 3);  // before the first sample: the address is never known
  metrics::registry clean;
  auto h = spawn_listing(clean, interval, BASTION_FAKE_NVML, {fake_l4(0)}, "teller-10");
  const auto text = clean.render_prometheus();
  CAF_CHECK_EQUAL(series(text, "bastion_gpu_info{device=\"1\",name=\"Fake L4\"}"), "1");
  const auto facts = ask(h);
  CAF_REQUIRE_EQUAL(facts.devices.size(), 1u);
  CAF_CHECK_EQUAL(facts.devices[0],
                  "cuda:0 NVIDIA L4 (sm_89, 22 GiB, PCI 0001:af:00.0, no nvidia-smi index: no "
                  "NVML device at this PCI address (1 gave none))");
  CAF_CHECK_EQUAL(facts.device_sampling_note,
                  "PCI address unknown for nvidia-smi 1: nvmlDeviceGetPciInfo_v3 failed: Not "
                  "Supported (NVML code 3)");
  stop(h);
}

CAF_TEST(a driver without the PCI query leaves the addresses out and says so once) {
  testing::fake_nvml_control old{BASTION_FAKE_NVML_NO_PCI};
  metrics::registry clean;
  auto h = spawn_listing(clean, interval, BASTION_FAKE_NVML_NO_PCI, {fake_l4(0)}, "teller-11");
  const auto facts = ask(h);
  CAF_REQUIRE_EQUAL(facts.devices.size(), 1u);
  CAF_CHECK_EQUAL(facts.devices[0],
                  "cuda:0 NVIDIA L4 (sm_89, 22 GiB, PCI 0001:af:00.0, no nvidia-smi index: NVML "
                  "gives no PCI addresses)");
  CAF_CHECK_EQUAL(facts.device_sampling_note,
                  "PCI addresses unknown: " + std::string{BASTION_FAKE_NVML_NO_PCI} +
                      " has no nvmlDeviceGetPciInfo_v3 (an older driver): no PCI addresses");
  CAF_CHECK_EQUAL(
      series(clean.render_prometheus(), "bastion_gpu_info{device=\"0\",name=\"Fake H200\"}"), "1");
  CAF_CHECK_EQUAL(series(clean.render_prometheus(), "bastion_gpu_power_watts{device=\"1\"}"), "72");
  stop(h);
}

CAF_TEST(CUDA series carry the NVML device label only when matched) {
  kernels::device::device_match matched;
  matched.nvml_index = 2;
  const metrics::labels both{{"cuda_device", "0"}, {"device", "2"}};
  CAF_CHECK(cuda_device_labels(0, &matched) == both);
  kernels::device::device_match unmatched;
  unmatched.why_not = "NVML not available";
  const metrics::labels alone{{"cuda_device", "3"}};
  CAF_CHECK(cuda_device_labels(3, &unmatched) == alone);
  CAF_CHECK(cuda_device_labels(3, nullptr) == alone);
}

CAF_TEST_FIXTURE_SCOPE_END()
