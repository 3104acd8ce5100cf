// peer_watch: the leader's lag (in time) and silence alerts on its peers.

#include "actors/peer_watch.hpp"

#include <catch2/catch.hpp>

#include <map>

using namespace bastion::actors;

namespace {

peer_watch_settings settings() {
  peer_watch_settings s;
  s.lag_alert_ms = 5000;
  s.silence_alert_ms = 3000;
  s.sample_spacing_ms = 10;
  s.samples_max = 64;
  return s;
}

const peer_reading& reading(const peer_watch& w, std::uint64_t peer) {
  for (const auto& r : w.readings())
    if (r.peer == peer) return r;
  FAIL("no reading for peer " << peer);
  throw;  // unreachable: FAIL throws
}

}  // namespace

TEST_CASE("a peer's lag is the age of the oldest entry it has not acknowledged") {
  peer_watch w{settings()};
  w.lead(10, 0);
  w.appended(11, 1000);  // entry 11 at 1 s
  w.appended(12, 2000);  // entry 12 at 2 s
  w.heard_from(2, 2500);
  w.heard_from(3, 2500);
  auto changes = w.evaluate({{2, 12}, {3, 10}}, 12, 2500);
  CHECK(changes.empty());
  CHECK(reading(w, 2).lag_ms == 0);     // has everything
  CHECK(reading(w, 3).lag_ms == 1500);  // lacks 11, appended at 1 s
  // 3 acknowledges 11: now it lacks only 12, appended at 2 s.
  w.evaluate({{2, 12}, {3, 11}}, 12, 3000);
  CHECK(reading(w, 3).lag_ms == 1000);
}

TEST_CASE("entries already in the log when leadership starts date from its start") {
  peer_watch w{settings()};
  w.lead(500, 10000);
  w.evaluate({{2, 400}}, 500, 12000);
  CHECK(reading(w, 2).lag_ms == 2000);
}

TEST_CASE("the lagging alert fires above the threshold and resolves below half of it") {
  peer_watch w{settings()};
  w.lead(1, 0);
  w.appended(2, 100);
  std::map<std::uint64_t, std::uint64_t> behind{{2, 1}};
  w.heard_from(2, 5000);
  CHECK(w.evaluate(behind, 2, 5100).empty());  // exactly 5 s: not above
  w.heard_from(2, 5200);
  auto fired = w.evaluate(behind, 2, 5200);
  REQUIRE(fired.size() == 1);
  CHECK(std::string{fired[0].alert} == alert_peer_lagging);
  CHECK(fired[0].peer == 2);
  CHECK(fired[0].firing);
  CHECK(fired[0].value_ms == 5100);
  CHECK(reading(w, 2).lagging);
  // Catching up to 12 of 13 with entry 13 appended 3 s ago: 3 s is under 5 s but above 2.5 s.
  w.appended(13, 2300);  // ignored: appends never go back in time for an older index...
  w.appended(13, 5300);
  w.heard_from(2, 8300);
  CHECK(w.evaluate({{2, 12}}, 13, 8300).empty());
  CHECK(reading(w, 2).lagging);  // still firing: hysteresis
  w.heard_from(2, 8400);
  auto resolved = w.evaluate({{2, 13}}, 13, 8400);
  REQUIRE(resolved.size() == 1);
  CHECK_FALSE(resolved[0].firing);
  CHECK_FALSE(reading(w, 2).lagging);
}

TEST_CASE("a peer never heard from fires the silence alert after the grace of a new leadership") {
  peer_watch w{settings()};
  w.heard_from(3, 100);  // heard long before leading: no head start on silence
  w.lead(1, 1000);
  CHECK(w.evaluate({{3, 1}}, 1, 3900).empty());
  auto fired = w.evaluate({{3, 1}}, 1, 4100);
  REQUIRE(fired.size() == 1);
  CHECK(std::string{fired[0].alert} == alert_peer_silent);
  CHECK(fired[0].value_ms == 3100);
  CHECK(reading(w, 3).lag_ms == 0);  // idle: nothing missing, yet silent
  w.heard_from(3, 4200);
  auto resolved = w.evaluate({{3, 1}}, 1, 4300);
  REQUIRE(resolved.size() == 1);
  CHECK_FALSE(resolved[0].firing);
}

TEST_CASE("standing down ends every firing alert and forgets the samples") {
  peer_watch w{settings()};
  w.lead(1, 0);
  w.appended(2, 10);
  w.evaluate({{2, 1}, {3, 1}}, 2, 9000);  // both lag and are silent
  CHECK(reading(w, 2).lagging);
  CHECK(reading(w, 3).silent);
  const auto firing = w.firing();
  REQUIRE(firing.size() == 4);  // both peers lag and are silent
  CHECK(firing[0].rfind("journal_peer_lagging peer 2:", 0) == 0);
  CHECK(firing[1].rfind("journal_peer_silent peer 2:", 0) == 0);
  CHECK(w.reading_of(9) == nullptr);
  auto ended = w.stand_down();
  CHECK(ended.size() == 4);
  for (const auto& c : ended) CHECK_FALSE(c.firing);
  CHECK(w.readings().empty());
  CHECK(w.samples() == 0);
  CHECK_FALSE(w.leading());
  // Not leading: nothing is judged.
  CHECK(w.evaluate({{2, 1}}, 2, 20000).empty());
}

TEST_CASE("a peer leaving the configuration ends its alerts") {
  peer_watch w{settings()};
  w.lead(1, 0);
  w.evaluate({{2, 1}}, 1, 4000);  // silent
  REQUIRE(reading(w, 2).silent);
  auto ended = w.evaluate({}, 1, 4100);
  REQUIRE(ended.size() == 1);
  CHECK_FALSE(ended[0].firing);
  CHECK(ended[0].peer == 2);
}

TEST_CASE("samples stay bounded under a long cut yet the oldest time is kept") {
  auto s = settings();
  peer_watch w{s};
  w.lead(0, 0);
  // One entry every 20 ms for 100 s while peer 2 acknowledges nothing past 0.
  for (std::uint64_t i = 1; i <= 5000; ++i) w.appended(i, static_cast<std::int64_t>(i) * 20);
  CHECK(w.samples() <= s.samples_max);
  w.heard_from(2, 100000);
  w.evaluate({{2, 0}}, 5000, 100000);
  // Entry 1 was appended at 20 ms: thinning may date it earlier (here to the leadership's
  // start), never later, so the lag never reads low.
  CHECK(reading(w, 2).lag_ms >= 99980);
  CHECK(reading(w, 2).lag_ms <= 100000);
  // An entry in the middle, appended at 50 s, reads within the coarsened spacing.
  w.evaluate({{2, 2499}}, 5000, 100000);
  CHECK(reading(w, 2).lag_ms >= 50000);
  CHECK(reading(w, 2).lag_ms <= 50000 + 100000 / static_cast<std::int64_t>(s.samples_max) * 4);
  // The caught-up peer lets samples go.
  w.evaluate({{2, 5000}}, 5000, 100010);
  CHECK(w.samples() <= 2);
}

TEST_CASE("appends within the sample spacing read high by at most the spacing") {
  peer_watch w{settings()};
  w.lead(0, 0);
  w.appended(1, 100);
  w.appended(2, 105);  // shares the sample at 100
  w.evaluate({{2, 1}}, 2, 1105);
  CHECK(reading(w, 2).lag_ms == 1005);  // true age 1000, spacing 10
}

TEST_CASE("alert lines name the alert, the peer, the value and the threshold") {
  const auto s = settings();
  CHECK(peer_watch::describe({alert_peer_lagging, 2, true, 7100}, s) ==
        "journal_peer_lagging peer 2: 7.1 s behind (alert above 5.0 s)");
  CHECK(peer_watch::describe({alert_peer_silent, 3, true, 4000}, s) ==
        "journal_peer_silent peer 3: not heard from for 4.0 s (alert above 3.0 s)");
  CHECK(peer_watch::describe({alert_peer_silent, 3, false, 0}, s) ==
        "journal_peer_silent peer 3: resolved");
}
