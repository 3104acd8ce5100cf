// The embedded API as an integrator uses it: start, ask health, stop; bad options refused
// with the option, the value and the reason.

#include <bastion/node.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>
#include <cstdio>
#include <fstream>
#include <string>

TEST_CASE("an embedded node starts, reports health and stops") {
  bastion::node_options opts;
  opts.name = "embedded-1";
  opts.site = "dr-remote";
  opts.worker_threads = 2;
  auto node = bastion::node::start(opts);
  auto h = node->health();
  CHECK(h.node == "embedded-1");
  CHECK(h.site == "dr-remote");
  CHECK(h.version == std::string{bastion::version()});
  CHECK(h.version == BASTION_VERSION_STRING);
  node->stop();
  node->stop();  // idempotent
  CHECK_THROWS_AS(node->health(), bastion::node_error);
}

TEST_CASE("bad node options are refused at start, naming the option and the reason") {
  bastion::node_options opts;
  opts.site = "moon";
  try {
    bastion::node::start(opts);
    FAIL("site 'moon' was accepted");
  } catch (const bastion::start_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("'site'") && Catch::Contains("moon") &&
                             Catch::Contains("prod, dr-local, dr-remote"));
  }
  opts = {};
  opts.name = "has space";
  CHECK_THROWS_WITH(bastion::node::start(opts), Catch::Contains("'name'"));
}

TEST_CASE("the health report says why the node does not sample its GPUs") {
  // A config whose [node] turns device sampling off: the one reason every machine shares (the
  // others depend on whether a driver is installed).
  char path[] = "/tmp/bastion-node-api-XXXXXX.toml";
  const int fd = ::mkstemps(path, 5);
  REQUIRE(fd >= 0);
  ::close(fd);
  struct removed_at_end {
    const char* p;
    ~removed_at_end() { std::remove(p); }
  } cleanup{path};
  std::ofstream(path) << "[node]\nname = \"unsampled\"\nsite = \"prod\"\ndevice_sample_ms = 0\n";
  bastion::node_options opts;
  opts.config_file = path;
  auto node = bastion::node::start(opts);
  const auto h = node->health();
  CHECK(h.node == "unsampled");
  CHECK(h.device_sampling_note == "device sampling off: node.device_sample_ms = 0");
  node->stop();
}
