// link_faults, the inter-site fault switch: what it accepts and refuses (the admin endpoint
// and the CLI hand it whatever a person typed), what it reports, and link_delay_order, which
// keeps one link's frames in order while its delay changes.

#include "actors/link_faults.hpp"
#include "actors/replicator_errors.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

using bastion::actors::link_delay_order;
using bastion::actors::link_fault;
using bastion::actors::link_faults;
using bastion::actors::replicator_errc;
using bastion::actors::replicator_error_detail;

namespace {

std::string refusal(const caf::error& err) {
  REQUIRE(err);
  CHECK(err.code() == static_cast<std::uint8_t>(replicator_errc::bad_link_fault));
  return replicator_error_detail(err);
}

}  // namespace

TEST_CASE("an unset link has no fault and the list holds only what was set") {
  link_faults f;
  CHECK(f.get(2) == link_fault{});
  CHECK(f.get(2).is_default());
  CHECK(f.all().empty());
  link_fault cut;
  cut.cut_outgoing = true;
  link_fault slow;
  slow.delay_ms = 50;
  slow.drop_ratio = 0.25;
  REQUIRE_FALSE(f.set(3, slow));
  REQUIRE_FALSE(f.set(2, cut));
  CHECK(f.get(2) == cut);
  CHECK(f.get(3) == slow);
  CHECK(f.get(4) == link_fault{});
  auto all = f.all();
  REQUIRE(all.size() == 2);
  CHECK(all[0].first == 2);  // by peer id
  CHECK(all[0].second == cut);
  CHECK(all[1].first == 3);
  CHECK(all[1].second.describe() == "drop_ratio=0.25 delay_ms=50");
  CHECK(cut.describe() == "cut_outgoing");
  CHECK(link_fault{}.describe() == "none");
}

TEST_CASE("setting the default, clear and clear_all remove faults") {
  link_faults f;
  link_fault both;
  both.cut_outgoing = true;
  both.cut_incoming = true;
  REQUIRE_FALSE(f.set(2, both));
  REQUIRE_FALSE(f.set(3, both));
  REQUIRE_FALSE(f.set(2, link_fault{}));  // the default is "no fault": nothing listed
  CHECK(f.all().size() == 1);
  f.clear(3);
  CHECK(f.all().empty());
  CHECK(f.get(3).is_default());
  REQUIRE_FALSE(f.set(2, both));
  REQUIRE_FALSE(f.set(3, both));
  f.clear_all();
  CHECK(f.all().empty());
  f.clear(9);  // clearing what was never set is harmless
  CHECK(f.all().empty());
}

TEST_CASE("out-of-range settings are refused naming the field and the value, the old one kept") {
  link_faults f;
  link_fault good;
  good.delay_ms = 10;
  REQUIRE_FALSE(f.set(2, good));

  link_fault bad = good;
  bad.drop_ratio = 1.5;
  auto why = refusal(f.set(2, bad));
  CHECK(why.find("drop_ratio") != std::string::npos);
  CHECK(why.find("1.5") != std::string::npos);
  CHECK(why.find("peer 2") != std::string::npos);

  bad.drop_ratio = -0.1;
  why = refusal(f.set(2, bad));
  CHECK(why.find("-0.1") != std::string::npos);

  bad.drop_ratio = std::numeric_limits<double>::quiet_NaN();
  why = refusal(f.set(2, bad));
  CHECK(why.find("nan") != std::string::npos);

  bad.drop_ratio = std::numeric_limits<double>::infinity();
  refusal(f.set(2, bad));

  bad = good;
  bad.delay_ms = link_faults::delay_ms_max + 1;
  why = refusal(f.set(2, bad));
  CHECK(why.find("delay_ms 60001") != std::string::npos);
  CHECK(why.find("60000") != std::string::npos);

  why = refusal(f.set(0, good));
  CHECK(why.find("peer id 0") != std::string::npos);

  CHECK(f.get(2) == good);  // every refusal left the setting alone
  CHECK(f.all().size() == 1);

  // The bounds themselves are accepted.
  link_fault edge;
  edge.drop_ratio = 1.0;
  edge.delay_ms = link_faults::delay_ms_max;
  CHECK_FALSE(f.set(2, edge));
  edge.drop_ratio = 0.0;
  CHECK_FALSE(f.set(2, edge));
}

TEST_CASE("the switch can be changed from another thread while it is read") {
  // The admin endpoint writes while the replicator reads; a torn read would show a delay
  // the writer never set, or more links than it uses. (Catch2 asserts on this thread only.)
  link_faults f;
  std::atomic<bool> refused{false};
  std::thread writer([&] {
    for (unsigned i = 0; i < 2000; ++i) {
      link_fault x;
      x.delay_ms = 1 + i % 100;
      x.cut_incoming = i % 2 == 0;
      if (f.set(1 + i % 3, x)) refused = true;
      if (i % 7 == 0) f.clear(1 + i % 3);
    }
  });
  bool torn = false;
  for (unsigned i = 0; i < 2000; ++i) {
    const auto x = f.get(1 + i % 3);
    if (!x.is_default() && (x.delay_ms < 1 || x.delay_ms > 100)) torn = true;
    for (const auto& [peer, fault] : f.all())
      if (peer < 1 || peer > 3 || fault.is_default()) torn = true;
  }
  writer.join();
  CHECK_FALSE(refused);
  CHECK_FALSE(torn);
  CHECK(f.all().size() <= 3);
}

TEST_CASE("a link without delay sends at once, a delayed link holds for its delay") {
  link_delay_order order;
  CHECK_FALSE(order.delay_for(2, 1000, 0).has_value());
  CHECK(order.delay_for(2, 1000, 50) == 50);
  CHECK(order.delay_for(3, 1000, 0) == std::nullopt);  // links are independent
  CHECK(order.delay_for(2, 1010, 50) == 50);           // a fixed delay keeps order by itself
}

TEST_CASE("when the delay drops while frames are in flight, later frames wait behind them") {
  link_delay_order order;
  // Frame A at t=1000 with 50 ms: delivered at 1050.
  REQUIRE(order.delay_for(2, 1000, 50) == 50);
  // The delay is cleared at t=1010: frame B would be delivered at 1010, before A. It is held
  // until A's time instead.
  CHECK(order.delay_for(2, 1010, 0) == 40);
  // And a frame with a shorter, non-zero delay likewise.
  CHECK(order.delay_for(2, 1020, 5) == 30);
  // A frame due exactly when the last one is still counts as behind it (through the clock).
  CHECK(order.delay_for(2, 1050, 0) == 0);
  // Once everything held is past, frames go straight out again.
  CHECK_FALSE(order.delay_for(2, 1051, 0).has_value());
  // When the delay grows, later frames are simply later: order holds without help.
  REQUIRE(order.delay_for(2, 2000, 10) == 10);
  CHECK(order.delay_for(2, 2001, 100) == 100);
}
