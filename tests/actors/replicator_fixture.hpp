#pragma once
// The simulated three-replica cluster as a CAF test fixture (CAF's deterministic coordinator),
// shared by the replicator's scenario tests: elect, propose and wait, ask a replica's status,
// and end with the cluster invariants (replicator_sim.hpp).

#include "actors/replicator.hpp"
#include "actors/replicator_errors.hpp"
#include "runtime/wire/announce.hpp"
#include "tests/actors/replicator_sim.hpp"

#include <caf/test/dsl.hpp>

#include <memory>
#include <string>
#include <vector>

namespace bastion::sim {

struct sim_config : caf::actor_system_config {
  sim_config() {
    wire::announce_wire_types(*this);
    actors::announce_replicator_types(*this);
  }
};

inline std::vector<std::uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

// For replicators spawned outside the simulated cluster (they fail before reading it).
inline const bastion::system_clock_source clock_for_tests;

struct fixture : test_coordinator_fixture<sim_config> {
  std::unique_ptr<sim::cluster> cluster;

  fixture() { cluster = std::make_unique<sim::cluster>(sys, sched, sim::cluster_options{}); }
  ~fixture() override { cluster.reset(); }

  // Replaces the default cluster with one built from `opt`.
  void rebuild(sim::cluster_options opt) {
    cluster.reset();
    cluster = std::make_unique<sim::cluster>(sys, sched, opt);
  }

  sim::cluster_options compacting(unsigned threshold, unsigned trailing) {
    sim::cluster_options opt;
    opt.snapshot_threshold = threshold;
    opt.snapshot_trailing = trailing;
    return opt;
  }

  // The whole committed sequence in `id`'s state machine, as strings.
  std::vector<std::string> state_of(std::uint64_t id) {
    std::vector<std::string> out;
    for (const auto& e : cluster->node(id).states.back()->entries())
      out.emplace_back(e.payload.begin(), e.payload.end());
    return out;
  }

  std::uint64_t elect() {
    CAF_REQUIRE(cluster->advance_until([&] { return cluster->leader() != 0; }, 10000));
    return cluster->leader();
  }

  // Proposes `n` records to the leader and waits until each has an outcome.
  std::vector<std::size_t> propose_n(const std::string& prefix, int n,
                                     std::int64_t limit_ms = 5000) {
    std::vector<std::size_t> slots;
    for (int i = 0; i < n; ++i)
      slots.push_back(cluster->propose_to_leader(bytes(prefix + std::to_string(i))));
    cluster->advance_until(
        [&] {
          for (auto s : slots)
            if (cluster->proposal(s).outcome == proposal_record::pending) return false;
          return true;
        },
        limit_ms);
    return slots;
  }

  bool all_acked(const std::vector<std::size_t>& slots) {
    for (auto s : slots)
      if (cluster->proposal(s).outcome != proposal_record::acked) return false;
    return true;
  }

  actors::replicator_status status_of(std::uint64_t id) {
    actors::replicator_status out;
    auto handle =
        self->request(cluster->node(id).handle, caf::infinite, actors::status_atom::value);
    sched.run();
    handle.receive([&](actors::replicator_status& s) { out = std::move(s); },
                   [&](caf::error& err) { CAF_FAIL(sys.render(err)); });
    return out;
  }

  void check_invariants(bool settle = true) {
    if (settle) {
      auto why = cluster->heal_and_settle(30000);
      CAF_CHECK_EQUAL(why, "");
    }
    for (const auto& v : cluster->check_invariants()) CAF_ERROR(v);
  }
};

}  // namespace bastion::sim
