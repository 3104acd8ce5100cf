// libraft is wired into the build: its in-memory fixture elects one leader among three
// servers. (Our raft_io on CAF replaces the fixture's I/O in the journal work.)

#include <catch2/catch.hpp>

extern "C" {
#include <raft.h>
#include <raft/fixture.h>
}

namespace {

int fsm_apply(struct raft_fsm*, const struct raft_buffer*, void** result) {
  *result = nullptr;
  return 0;
}
int fsm_snapshot(struct raft_fsm*, struct raft_buffer* bufs[], unsigned* n) {
  *bufs = nullptr;
  *n = 0;
  return RAFT_NOMEM;
}
int fsm_restore(struct raft_fsm*, struct raft_buffer*) { return RAFT_NOMEM; }

}  // namespace

TEST_CASE("libraft's fixture elects exactly one leader among three servers") {
  raft_fixture f{};  // zeroed: raft_fixture_grow reads fields initialize leaves alone
  raft_fsm fsms[3];
  for (auto& fsm : fsms) {
    fsm = raft_fsm{};
    fsm.version = 1;
    fsm.apply = fsm_apply;
    fsm.snapshot = fsm_snapshot;
    fsm.restore = fsm_restore;
  }
  REQUIRE(raft_fixture_initialize(&f) == 0);
  for (auto& fsm : fsms) REQUIRE(raft_fixture_grow(&f, &fsm) == 0);
  raft_configuration conf;
  REQUIRE(raft_fixture_configuration(&f, 3, &conf) == 0);
  REQUIRE(raft_fixture_bootstrap(&f, &conf) == 0);
  raft_configuration_close(&conf);
  REQUIRE(raft_fixture_start(&f) == 0);

  raft_fixture_elect(&f, 0);
  CHECK(raft_fixture_leader_index(&f) == 0);
  int leaders = 0;
  for (unsigned i = 0; i < 3; ++i)
    if (raft_state(raft_fixture_get(&f, i)) == RAFT_LEADER) ++leaders;
  CHECK(leaders == 1);
  raft_fixture_close(&f);
}
