// health_actor on CAF's deterministic test coordinator (its own runner, not Catch2): the
// actor answers its typed request with the identity it was given and uptime from the
// injected clock, so the answer is exact.

#define CAF_SUITE health_actor

#include "actors/health_actor.hpp"

#include <caf/test/dsl.hpp>
#include <caf/test/unit_test_impl.hpp>

using namespace bastion;
using namespace bastion::actors;

namespace {

struct fixture : test_coordinator_fixture<> {
  manual_clock clock{std::chrono::seconds{100}};
  health_actor health;

  fixture() {
    health = sys.spawn(health_actor_impl, node_identity{"teller-1", "dr-local"}, &clock);
    run();
  }

  // Sends the typed request, lets the deterministic scheduler deliver it, and takes the reply.
  node_health ask() {
    node_health out;
    auto handle = self->request(health, caf::infinite, get_health_atom::value);
    run();
    handle.receive([&](node_health& h) { out = std::move(h); },
                   [&](caf::error& err) { CAF_FAIL(sys.render(err)); });
    return out;
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

CAF_TEST_FIXTURE_SCOPE_END()
