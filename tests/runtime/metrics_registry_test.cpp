#include "runtime/metrics/registry.hpp"

#include <catch2/catch.hpp>

using bastion::metrics::registry;

TEST_CASE("counters and gauges render in Prometheus text format") {
  registry reg;
  reg.get_counter("bastion_wire_frames_rejected_total", "Frames refused", {{"reason", "bad_seal"}})
      .inc(3);
  reg.get_counter("bastion_wire_frames_rejected_total", "Frames refused", {{"reason", "malformed"}})
      .inc();
  reg.get_gauge("bastion_queue_depth", "Queued requests", {{"class", "batch\"x"}}).set(2.5);
  const auto text = reg.render_prometheus();
  CHECK(text ==
        "# HELP bastion_queue_depth Queued requests\n"
        "# TYPE bastion_queue_depth gauge\n"
        "bastion_queue_depth{class=\"batch\\\"x\"} 2.5\n"
        "# HELP bastion_wire_frames_rejected_total Frames refused\n"
        "# TYPE bastion_wire_frames_rejected_total counter\n"
        "bastion_wire_frames_rejected_total{reason=\"bad_seal\"} 3\n"
        "bastion_wire_frames_rejected_total{reason=\"malformed\"} 1\n");
}

TEST_CASE("the same series is returned for the same name and labels") {
  registry reg;
  auto& a = reg.get_counter("x_total", "x", {{"k", "v"}});
  auto& b = reg.get_counter("x_total", "x", {{"k", "v"}});
  CHECK(&a == &b);
}

TEST_CASE("bad metric names and type clashes are refused") {
  registry reg;
  CHECK_THROWS_AS(reg.get_counter("9bad", "x"), std::invalid_argument);
  CHECK_THROWS_AS(reg.get_counter("ok", "x", {{"bad-label", "v"}}), std::invalid_argument);
  reg.get_counter("dup", "x");
  CHECK_THROWS_AS(reg.get_gauge("dup", "x"), std::invalid_argument);
}
