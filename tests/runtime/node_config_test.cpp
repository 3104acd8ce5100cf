// The node configuration: a real config file loads; every bad value is refused with its key
// path, the value and the reason; unknown keys and TOML syntax errors are refused too.

#include "runtime/config/node_config.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>
#include <fstream>

using namespace bastion::config;

namespace {

const std::string model_file = "/tmp/bastion-config-test-" + std::to_string(::getpid()) + ".gguf";

struct model_file_guard {
  model_file_guard() { std::ofstream{model_file} << "x"; }
  ~model_file_guard() { ::unlink(model_file.c_str()); }
};

std::string base_config() {
  return "[node]\nname = \"prod-1\"\nsite = \"prod\"\n"
         "[[models]]\nid = \"m\"\npath = \"" +
         model_file +
         "\"\n"
         "[[workers]]\nid = \"cpu-0\"\nkind = \"cpu\"\nmodels = [\"m\"]\n";
}

// The model and one gpu worker serving it (no [node] table: its defaults).
std::string gpu_config() {
  return "[[models]]\nid = \"m\"\npath = \"" + model_file +
         "\"\n[[workers]]\nid = \"gpu-0\"\nkind = \"gpu\"\nmodels = [\"m\"]\n";
}

std::string errors_of(const std::string& text) {
  auto r = parse_node_config(text, "test.toml");
  CHECK_FALSE(r.config);
  std::string all;
  for (const auto& e : r.errors) all += e + "\n";
  return all;
}

}  // namespace

TEST_CASE("the shipped single-site config loads (when its model is fetched)") {
  auto r = load_node_config(BASTION_SOURCE_DIR "/cluster/configs/single-site.toml");
  if (!r.config) {
    // Only the model path may be missing on a machine without the model.
    REQUIRE(r.errors.size() == 1);
    CHECK_THAT(r.errors[0], Catch::Contains("models[0].path") && Catch::Contains("no such file"));
    return;
  }
  const auto& c = *r.config;
  CHECK(c.node.name == "prod-1");
  CHECK(c.http.listen.port == 8080);
  CHECK(c.rpc.port == 8081);
  CHECK(c.scheduler.utc_offset_minutes == 480);
  REQUIRE(c.scheduler.windows.size() == 3);
  CHECK(c.scheduler.windows[0].days_mask == 0x1f);
  CHECK(c.scheduler.windows[1].start_minute == 20 * 60);
  CHECK(c.scheduler.windows[1].end_minute == 8 * 60);
  CHECK(c.scheduler.windows[2].limit[3] == 0.9);
  REQUIRE(c.api_keys.size() == 1);
  CHECK(c.api_keys[0].classes.size() == 3);
}

TEST_CASE("a minimal config loads with defaults") {
  model_file_guard guard;
  auto r = parse_node_config(base_config(), "test.toml");
  INFO((r.errors.empty() ? std::string{} : r.errors[0]));
  REQUIRE(r.config);
  CHECK(r.config->workers[0].batch_max == 16);
  CHECK(r.config->http.body_bytes_max == 1048576);
  CHECK(r.config->scheduler.queue_max[0] == 256);
  CHECK(r.config->workers[0].step_stall_ms == 600000);  // a cpu worker's
}

TEST_CASE("a worker's stall limit defaults by its kind and may be switched off") {
  model_file_guard guard;
  const std::string gpu = gpu_config();
  auto g = parse_node_config(gpu, "test.toml");
  REQUIRE(g.config);
  CHECK(g.config->workers[0].step_stall_ms == 90000);
  auto off = parse_node_config(base_config() + "step_stall_ms = 0\n", "test.toml");
  REQUIRE(off.config);
  CHECK(off.config->workers[0].step_stall_ms == 0);
  auto set = parse_node_config(gpu + "step_stall_ms = 120000\n", "test.toml");
  REQUIRE(set.config);
  CHECK(set.config->workers[0].step_stall_ms == 120000);
}

TEST_CASE("bad values are refused with the key, the value and the reason") {
  model_file_guard guard;
  const auto b = base_config();
  CHECK_THAT(
      errors_of("[node]\nsite = \"moon\"\n"),
      Catch::Contains(
          "test.toml: node.site = 'moon' refused: must be one of prod, dr-local, dr-remote"));
  CHECK_THAT(errors_of(b + "batch_max = 0\n"),
             Catch::Contains("workers[0].batch_max = 0 refused: must be between 1 and 1024"));
  CHECK_THAT(errors_of(b + "threads = 300\n"),
             Catch::Contains("workers[0].threads = 300 refused: must be between 0 and 256"));
  CHECK_THAT(errors_of(b + "threads = -1\n"),
             Catch::Contains("workers[0].threads = -1 refused: must be between 0 and 256"));
  CHECK_THAT(errors_of("[[models]]\nid = \"m\"\npath = \"" + model_file +
                       "\"\n[[workers]]\nid = \"gpu-0\"\nkind = \"gpu\"\nmodels = [\"m\"]\n"
                       "threads = 4\n"),
             Catch::Contains("workers[0].threads = 4 refused: only cpu and edge workers"));
  const std::string gpu = gpu_config();
  CHECK_THAT(errors_of(gpu + "devices = [0, 1, 0]\n"),
             Catch::Contains("workers[0].devices = [0, 1, 0] refused: cuda:0 appears twice"));
  CHECK_THAT(errors_of(gpu + "devices = [0, 1]\ndevice = 2\n"),
             Catch::Contains("workers[0].device = 2 refused: give device or devices, not both"));
  CHECK_THAT(errors_of(gpu + "devices = [0, 1, 2, 3, 4, 5, 6, 7, 8]\n"),
             Catch::Contains("at most 8 devices"));
  CHECK_THAT(errors_of(gpu + "devices = [0, -1]\n"),
             Catch::Contains("workers[0].devices[1] = -1 refused: must be between 0 and 1023"));
  CHECK_THAT(errors_of(gpu + "devices = [\"cuda:0\"]\n"),
             Catch::Contains("workers[0].devices[0] = 'cuda:0' refused: must be an integer"));
  CHECK_THAT(errors_of(b + "devices = [0]\n"),
             Catch::Contains("workers[0].devices = [0] refused: only gpu workers use devices"));
  CHECK_THAT(errors_of(b + "recovery_backoff_ms = 500\nrecovery_backoff_ms_max = 200\n"),
             Catch::Contains("workers[0].recovery_backoff_ms_max = 200 refused: must be at least "
                             "recovery_backoff_ms (500)"));
  CHECK_THAT(errors_of(b + "step_stall_ms = 500\n"),
             Catch::Contains("workers[0].step_stall_ms = 500 refused: at least 1000"));
  CHECK_THAT(errors_of(b + "step_stall_ms = -1\n"),
             Catch::Contains("workers[0].step_stall_ms = -1 refused: must be between 0"));
  CHECK_THAT(errors_of(b + "recovery_backoff_ms = 0\n"),
             Catch::Contains("workers[0].recovery_backoff_ms = 0 refused: must be between 1"));
  CHECK_THAT(errors_of(b + "kind2 = 1\n"),
             Catch::Contains("workers[0].kind2 is not a known setting"));
  CHECK_THAT(errors_of(b + "[http]\nlisten = \"localhost\"\n"),
             Catch::Contains("http.listen = 'localhost' refused: must be host:port"));
  CHECK_THAT(errors_of(b + "[http]\nbody_bytes_max = \"big\"\n"),
             Catch::Contains("http.body_bytes_max = 'big' refused: must be an integer"));
  CHECK_THAT(errors_of(b + "[scheduler]\ntimezone = \"Mars/Olympus\"\n"),
             Catch::Contains("scheduler.timezone = 'Mars/Olympus' refused"));
  CHECK_THAT(errors_of(b + "[[scheduler.windows]]\nname = \"w\"\ndays = [\"funday\"]\n"),
             Catch::Contains("scheduler.windows[0].days"));
  CHECK_THAT(
      errors_of(b + "[[scheduler.windows]]\nname = \"w\"\ndays = [\"mon\"]\nstart = \"25:00\"\n"),
      Catch::Contains("scheduler.windows[0].start = '25:00' refused"));
  CHECK_THAT(errors_of(b + "[[scheduler.windows]]\nname = \"w\"\ndays = [\"mon\"]\n"
                           "reserve = { production = 0.9, batch = 0.5 }\n"),
             Catch::Contains("more than all capacity"));
  CHECK_THAT(errors_of(b + "[[scheduler.windows]]\nname = \"w\"\ndays = [\"mon\"]\n"
                           "reserve = { batch = 1.5 }\n"),
             Catch::Contains("reserve.batch = 1.5 refused: must be a fraction between 0 and 1"));
  CHECK_THAT(errors_of(b + "[[api_keys]]\nname = \"k\"\nkey_sha256 = \"secret\"\n"),
             Catch::Contains("api_keys[0].key_sha256 = 'secret' refused: must be 64 hex digits"));
  CHECK_THAT(
      errors_of("[[models]]\nid = \"m\"\npath = \"/no/such/model.gguf\"\n"),
      Catch::Contains("models[0].path = '/no/such/model.gguf' refused: no such file or folder"));
  CHECK_THAT(errors_of(b + "[[workers]]\nid = \"cpu-0\"\nmodels = [\"other\"]\n"),
             Catch::Contains("another worker has this id") &&
                 Catch::Contains("'other' refused: no model has this id"));
  CHECK_THAT(errors_of("[[models]]\nid = \"m\"\npath = \"" + model_file + "\"\nfallback = \"m\"\n"),
             Catch::Contains("cannot be its own fallback"));
  CHECK_THAT(errors_of(b + "[tls]\n"), Catch::Contains("tls is not a known setting"));
}

TEST_CASE("a gpu worker's devices: one by default, several for tensor parallelism") {
  model_file_guard guard;
  const std::string gpu = gpu_config();
  auto one = parse_node_config(gpu, "test.toml");
  REQUIRE(one.config);
  CHECK(one.config->workers[0].devices == std::vector<int>{0});
  auto picked = parse_node_config(gpu + "device = 3\n", "test.toml");
  REQUIRE(picked.config);
  CHECK(picked.config->workers[0].devices == std::vector<int>{3});
  auto split = parse_node_config(gpu + "devices = [2, 3]\n", "test.toml");
  REQUIRE(split.config);
  CHECK(split.config->workers[0].devices == std::vector<int>{2, 3});
  CHECK(split.config->workers[0].device == 2);
  auto cpu = parse_node_config(base_config(), "test.toml");
  REQUIRE(cpu.config);
  CHECK(cpu.config->workers[0].devices.empty());
}

TEST_CASE("TOML syntax errors give the line and column") {
  CHECK_THAT(errors_of("[node]\nname = \"x\nsite = 1\n"), Catch::Contains("test.toml:2:"));
  auto r = load_node_config("/no/such/config.toml");
  CHECK_FALSE(r.config);
  CHECK_THAT(r.errors.at(0), Catch::Contains("cannot read"));
}

TEST_CASE("the cluster section names this replica, its journal and the other sites") {
  model_file_guard guard;
  const auto b = base_config() +
                 "[cluster]\nreplica_id = 1\njournal_dir = \"/tmp/j1\"\n"
                 "raft_listen = \"127.0.0.1:7101\"\nelection_timeout_ms = 800\n"
                 "[[cluster.peers]]\nreplica_id = 2\nsite = \"dr-local\"\n"
                 "raft = \"127.0.0.1:7102\"\nhttp_address = \"127.0.0.1:8182\"\n"
                 "[[cluster.peers]]\nreplica_id = 3\nsite = \"dr-remote\"\n"
                 "raft = \"127.0.0.1:7103\"\n";
  auto r = parse_node_config(b, "test.toml");
  INFO((r.errors.empty() ? std::string{} : r.errors[0]));
  REQUIRE(r.config);
  const auto& c = r.config->cluster;
  CHECK(c.enabled);
  CHECK(c.replica_id == 1);
  CHECK(c.raft_listen.port == 7101);
  CHECK(c.election_timeout_ms == 800);
  CHECK(c.heartbeat_ms == 100);
  CHECK(c.retain_output_text);
  CHECK(c.lag_alert_ms == 5000);
  CHECK(c.silence_alert_ms == 3 * 800);  // three election timeouts unless set
  REQUIRE(c.peers.size() == 2);
  CHECK(c.peers[0].http_address == "127.0.0.1:8182");
  CHECK(c.peers[1].raft.port == 7103);

  CHECK_FALSE(parse_node_config(base_config(), "t").config->cluster.enabled);  // one node

  CHECK_THAT(errors_of(base_config() + "[cluster]\njournal_dir = \"/tmp/j\"\n"),
             Catch::Contains("cluster.replica_id = (missing) refused"));
  CHECK_THAT(errors_of(base_config() + "[cluster]\nreplica_id = 1\n"),
             Catch::Contains("cluster.journal_dir = '' refused"));
  CHECK_THAT(errors_of(base_config() +
                       "[cluster]\nreplica_id = 1\njournal_dir = \"/tmp/j\"\nheartbeat_ms = 600\n"),
             Catch::Contains("cluster.heartbeat_ms = 600 refused: must be at most half"));
  CHECK_THAT(errors_of(base_config() + "[cluster]\nreplica_id = 1\njournal_dir = \"/tmp/j\"\n"
                                       "silence_alert_ms = 500\n"),
             Catch::Contains("cluster.silence_alert_ms = 500 refused: must be at least "
                             "election_timeout_ms (1000)"));
  CHECK_THAT(errors_of(base_config() + "[cluster]\nreplica_id = 1\njournal_dir = \"/tmp/j\"\n"
                                       "lag_alert_ms = 5\n"),
             Catch::Contains("cluster.lag_alert_ms = 5 refused"));
  const auto dup = base_config() +
                   "[cluster]\nreplica_id = 1\njournal_dir = \"/tmp/j\"\n"
                   "[[cluster.peers]]\nreplica_id = 1\nsite = \"prod\"\nraft = \"h:1\"\n";
  CHECK_THAT(errors_of(dup), Catch::Contains("cluster.peers[0].replica_id = 1 refused") &&
                                 Catch::Contains("cluster.peers[0].site = 'prod' refused"));
  CHECK_THAT(errors_of(base_config() + "[cluster]\nreplica_id = 1\njournal_dir = \"/tmp/j\"\n"
                                       "[[cluster.peers]]\nreplica_id = 2\nsite = \"dr-local\"\n"),
             Catch::Contains("cluster.peers[0].raft = (missing) refused"));
}

TEST_CASE("node.device_sample_ms: 5 s by default, 0 turns GPU sampling off, too fast is refused") {
  auto loads = [](const std::string& text) {
    auto r = parse_node_config(text, "test.toml");
    INFO((r.errors.empty() ? std::string{} : r.errors[0]));
    REQUIRE(r.config);
    return r.config->node.device_sample_ms;
  };
  CHECK(loads("[node]\nname = \"n\"\n") == 5000);
  CHECK(loads("[node]\ndevice_sample_ms = 0\n") == 0);
  CHECK(loads("[node]\ndevice_sample_ms = 250\n") == 250);
  CHECK_THAT(
      errors_of("[node]\ndevice_sample_ms = 50\n"),
      Catch::Contains("node.device_sample_ms = 50 refused: must be 0 (off) or at least 100"));
  CHECK_THAT(errors_of("[node]\ndevice_sample_ms = 3600001\n"),
             Catch::Contains("node.device_sample_ms = 3600001 refused: must be between 0 and"));
  CHECK_THAT(errors_of("[node]\ndevice_sample_ms = \"fast\"\n"),
             Catch::Contains("node.device_sample_ms = 'fast' refused: must be an integer"));
}
