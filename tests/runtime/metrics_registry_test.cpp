#include "runtime/metrics/registry.hpp"

#include <catch2/catch.hpp>

#include <cmath>

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

TEST_CASE("histograms render cumulative buckets, their sum and count") {
  registry reg;
  auto& h = reg.get_histogram("bastion_ttft_seconds", "Time to first token", {0.1, 0.25, 1},
                              {{"class", "production"}});
  for (double v : {0.05, 0.1, 0.2, 0.9, 3.0, std::nan("")}) h.observe(v);  // NaN: not counted
  reg.get_histogram("bastion_ttft_seconds", "Time to first token", {0.1, 0.25, 1});  // no labels
  CHECK(reg.render_prometheus() ==
        "# HELP bastion_ttft_seconds Time to first token\n"
        "# TYPE bastion_ttft_seconds histogram\n"
        "bastion_ttft_seconds_bucket{le=\"0.1\"} 0\n"
        "bastion_ttft_seconds_bucket{le=\"0.25\"} 0\n"
        "bastion_ttft_seconds_bucket{le=\"1\"} 0\n"
        "bastion_ttft_seconds_bucket{le=\"+Inf\"} 0\n"
        "bastion_ttft_seconds_sum 0\n"
        "bastion_ttft_seconds_count 0\n"
        "bastion_ttft_seconds_bucket{class=\"production\",le=\"0.1\"} 2\n"
        "bastion_ttft_seconds_bucket{class=\"production\",le=\"0.25\"} 3\n"
        "bastion_ttft_seconds_bucket{class=\"production\",le=\"1\"} 4\n"
        "bastion_ttft_seconds_bucket{class=\"production\",le=\"+Inf\"} 5\n"
        "bastion_ttft_seconds_sum{class=\"production\"} 4.25\n"
        "bastion_ttft_seconds_count{class=\"production\"} 5\n");
  CHECK(h.in_bucket(0) == 2);  // 0.1 itself falls in le="0.1"
  CHECK(h.in_bucket(3) == 1);
}

TEST_CASE("bad histogram bounds, an le label and other bounds for a family are refused") {
  registry reg;
  CHECK_THROWS_AS(reg.get_histogram("h", "x", {}), std::invalid_argument);
  CHECK_THROWS_AS(reg.get_histogram("h", "x", {1, 1}), std::invalid_argument);
  CHECK_THROWS_AS(reg.get_histogram("h", "x", {2, 1}), std::invalid_argument);
  CHECK_THROWS_AS(reg.get_histogram("h", "x", {1, INFINITY}), std::invalid_argument);
  CHECK_THROWS_AS(reg.get_histogram("h", "x", {1}, {{"le", "1"}}), std::invalid_argument);
  reg.get_histogram("h", "x", {1, 2});
  CHECK_THROWS_AS(reg.get_histogram("h", "x", {1, 3}, {{"k", "v"}}), std::invalid_argument);
  CHECK_THROWS_AS(reg.get_gauge("h", "x"), std::invalid_argument);
  CHECK(&reg.get_histogram("h", "x", {1, 2}) == &reg.get_histogram("h", "x", {1, 2}));
}
