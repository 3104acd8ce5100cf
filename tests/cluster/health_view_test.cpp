// `bastion health` from a node's /metrics: workers with their kind, backend, KV blocks and
// recovery counts; GPUs with NVML's readings (absent, failing as NaN), their PCI address and
// the CUDA ordinal matched to them; CUDA devices NVML could not place; firing alerts. The
// verdict flags an unhealthy worker, an unresponsive GPU, an alert or a site that is down.

#include "cluster/cli/health_view.hpp"

#include <catch2/catch.hpp>

#include <cmath>

using namespace bastion::cli;

namespace {

const char* const node_metrics = R"(# HELP bastion_worker_info This node's workers
# TYPE bastion_worker_info gauge
bastion_worker_info{worker="gpu-0",kind="gpu",backend="cuda:0+1"} 1
bastion_worker_info{worker="cpu-0",kind="cpu",backend="cpu"} 1
bastion_worker_healthy{worker="gpu-0"} 1
bastion_worker_healthy{worker="cpu-0"} 1
bastion_worker_steps_total{worker="gpu-0"} 1200
bastion_worker_tokens_generated_total{worker="gpu-0"} 9000
bastion_worker_kv_blocks_used{worker="gpu-0"} 37
bastion_worker_kv_blocks_total{worker="gpu-0"} 4096
bastion_worker_recovery_probes_total{worker="gpu-0"} 3
bastion_worker_recoveries_total{worker="gpu-0"} 1
bastion_worker_group_rebuilds_total{worker="gpu-0"} 1
bastion_worker_step_stalls_total{worker="gpu-0"} 0
bastion_gpu_info{device="0",name="NVIDIA H200",pci_bus_id="0000:18:00.0"} 1
bastion_gpu_info{device="1",name="NVIDIA H200",pci_bus_id="0000:2a:00.0"} 1
bastion_gpu_temperature_celsius{device="0"} 41
bastion_gpu_temperature_celsius{device="1"} NaN
bastion_gpu_power_watts{device="0"} 350.5
bastion_gpu_utilization_ratio{device="0"} 0.93
bastion_gpu_memory_used_bytes{device="0"} 107374182400
bastion_gpu_memory_total_bytes{device="0"} 150323855360
bastion_gpu_sample_errors_total{device="1",reading="temperature",reason="gpu_lost"} 2
bastion_gpu_responsive{cuda_device="0",device="1"} 1
bastion_gpu_responsive{cuda_device="1",device="0"} 1
bastion_serving_queue_depth{class="production"} 2
bastion_serving_queue_depth{class="batch"} 40
bastion_serving_running{class="production"} 16
bastion_serving_running{class="batch"} 0
)";

}  // namespace

TEST_CASE("workers and GPUs are read from the metrics, CUDA ordinals beside NVML indexes") {
  const auto s = health_from("prod", "10.0.0.1:8080", true, true, node_metrics);
  CHECK(s.metric_errors.empty());
  REQUIRE(s.workers.size() == 2);
  const auto& g = s.workers[0];
  CHECK(g.id == "gpu-0");
  CHECK(g.kind == "gpu");
  CHECK(g.backend == "cuda:0+1");
  CHECK(g.healthy);
  CHECK(g.steps == 1200);
  CHECK(g.tokens == 9000);
  CHECK(g.kv_used == 37.0);
  CHECK(g.kv_total == 4096.0);
  CHECK(g.recovery_probes == 3);
  CHECK(g.group_rebuilds == 1);
  CHECK(s.workers[1].id == "cpu-0");
  CHECK_FALSE(s.workers[1].kv_used);  // not published: shown as "-", not as 0

  REQUIRE(s.gpus.size() == 2);
  CHECK(s.gpus[0].device == "0");
  CHECK(s.gpus[0].name == "NVIDIA H200");
  CHECK(s.gpus[0].pci_bus_id == "0000:18:00.0");
  CHECK(s.gpus[0].memory_used_bytes == 107374182400.0);
  CHECK(s.gpus[0].cuda_device == "1");  // renumbered, as by CUDA_VISIBLE_DEVICES=1,0
  CHECK(s.gpus[1].cuda_device == "0");
  CHECK(s.gpus[1].sample_errors == 2);
  CHECK(s.unmatched_cuda.empty());
  CHECK(all_well(s));

  const auto text = render_health({s});
  CHECK_THAT(text, Catch::Contains("prod  10.0.0.1:8080  alive, ready (serving as primary)\n"));
  CHECK_THAT(text, Catch::Contains("  requests queued: production 2, batch 40\n"
                                   "  requests running: production 16, batch 0\n"));
  CHECK_THAT(text, Catch::Contains("gpu-0   gpu   cuda:0+1  healthy  1200   9000    37/4096"));
  CHECK_THAT(text, Catch::Contains("cpu-0   cpu   cpu       healthy  0      0       -/-"));
  CHECK_THAT(text, Catch::Contains("100.0 of 140.0 GiB (71%)"));
  CHECK_THAT(text, Catch::Contains("41 C  350 W  93%"));  // %.0f rounds 350.5 to even
  CHECK_THAT(text, Catch::Contains("n/a"));               // GPU 1's failing temperature
  CHECK_THAT(text, Catch::Contains("0000:2a:00.0  n/a   -      -     -"));

  const auto j = health_json(s);
  CHECK(j["all_well"] == true);
  CHECK(j["gpus"][1]["temperature_celsius"].is_null());
  CHECK(j["gpus"][0]["cuda_device"] == "1");
  CHECK(j["workers"][0]["backend"] == "cuda:0+1");
  CHECK(j["requests_queued"]["batch"] == 40.0);
  CHECK(j["requests_running"]["production"] == 16.0);
}

TEST_CASE("an unhealthy worker, an unresponsive GPU, an alert or a down site needs attention") {
  const std::string base = node_metrics;
  {
    auto text = base;
    text += "bastion_worker_healthy{worker=\"cpu-0\"} 0\n";  // a later line does not override
    CHECK(all_well(health_from("prod", "a", true, true, text)));
  }
  {
    std::string text = base;
    text.replace(text.find("bastion_worker_healthy{worker=\"cpu-0\"} 1"),
                 std::string{"bastion_worker_healthy{worker=\"cpu-0\"} 1"}.size(),
                 "bastion_worker_healthy{worker=\"cpu-0\"} 0");
    const auto s = health_from("prod", "a", true, false, text);
    CHECK_FALSE(all_well(s));
    CHECK_THAT(render_health({s}),
               Catch::Contains("UNHEALTHY") && Catch::Contains("not ready  (needs attention)"));
  }
  {
    // A CUDA device NVML could not place still counts, and shows as such.
    const auto s = health_from("prod", "a", true, true,
                               base + "bastion_gpu_responsive{cuda_device=\"2\"} 0\n");
    REQUIRE(s.unmatched_cuda.size() == 1);
    CHECK(s.unmatched_cuda[0].first == "2");
    CHECK_FALSE(all_well(s));
    CHECK_THAT(render_health({s}), Catch::Contains("(no NVML match)") && Catch::Contains("NO"));
  }
  {
    const auto s =
        health_from("dr-local", "a", true, false,
                    base +
                        "bastion_alert_firing{peer=\"1\",alert=\"journal_peer_lagging\"} 1\n"
                        "bastion_alert_firing{peer=\"2\",alert=\"journal_peer_silent\"} 0\n");
    REQUIRE(s.alerts.size() == 1);
    CHECK(s.alerts[0] == "journal_peer_lagging peer 1");
    CHECK_FALSE(all_well(s));
    CHECK_THAT(render_health({s}), Catch::Contains("ALERT journal_peer_lagging peer 1"));
  }
  {
    site_health down;
    down.site = "dr-remote";
    down.address = "10.0.2.1:8080";
    down.error = "connect(): Connection refused";
    CHECK_FALSE(all_well(down));
    CHECK(render_health({down}) ==
          "dr-remote  10.0.2.1:8080  DOWN: connect(): Connection refused\n");
    CHECK(health_json(down)["error"] == "connect(): Connection refused");
  }
}

TEST_CASE("a node without GPUs or with unreadable lines says so") {
  const auto s = health_from("edge", "a", true, true,
                             "bastion_worker_healthy{worker=\"cpu-0\"} 1\nbroken{ 1\n");
  CHECK(s.gpus.empty());
  REQUIRE(s.metric_errors.size() == 1);
  const auto text = render_health({s});
  CHECK_THAT(text, Catch::Contains("gpus: none published"));
  CHECK_THAT(text, Catch::Contains("(unread /metrics line 2:"));
  CHECK(all_well(s));  // one unreadable line is not a fault of the node's
}

TEST_CASE("a quantile is the bucket it falls in, or past the last bound") {
  const std::vector<std::pair<double, double>> b{
      {0.1, 10}, {0.25, 60}, {1, 99}, {INFINITY, 100}};  // cumulative
  CHECK(bucket_quantile(b, 0.05) == "<= 0.1");
  CHECK(bucket_quantile(b, 0.5) == "<= 0.25");
  CHECK(bucket_quantile(b, 0.99) == "<= 1");
  CHECK(bucket_quantile(b, 1.0) == "> 1");
  CHECK(bucket_quantile({}, 0.5).empty());
  CHECK(bucket_quantile({{0.1, 0}, {INFINITY, 0}}, 0.5).empty());
}

TEST_CASE("answer latencies by class are read from the node's histograms") {
  const std::string text =
      "bastion_serving_request_seconds_bucket{class=\"production\",le=\"0.5\"} 3\n"
      "bastion_serving_request_seconds_bucket{class=\"production\",le=\"1\"} 4\n"
      "bastion_serving_request_seconds_bucket{class=\"production\",le=\"+Inf\"} 4\n"
      "bastion_serving_request_seconds_sum{class=\"production\"} 1.9\n"
      "bastion_serving_request_seconds_count{class=\"production\"} 4\n"
      "bastion_serving_request_seconds_bucket{class=\"batch\",le=\"0.5\"} 0\n"
      "bastion_serving_request_seconds_bucket{class=\"batch\",le=\"+Inf\"} 0\n"
      "bastion_serving_time_to_first_token_seconds_bucket{class=\"production\",le=\"0.05\"} 1\n"
      "bastion_serving_time_to_first_token_seconds_bucket{class=\"production\",le=\"0.1\"} 4\n"
      "bastion_serving_time_to_first_token_seconds_bucket{class=\"production\",le=\"+Inf\"} 4\n";
  const auto s = health_from("prod", "a", true, true, text);
  REQUIRE(s.latency.size() == 1);  // batch had no answers
  const auto& l = s.latency[0];
  CHECK(l.priority_class == "production");
  CHECK(l.answers == 4);
  CHECK(l.ttft_p50 == "<= 0.1");
  CHECK(l.e2e_p50 == "<= 0.5");
  CHECK(l.e2e_p99 == "<= 1");
  CHECK(l.tpot_p50.empty());  // not published
  const auto table = render_health({s});
  CHECK_THAT(table, Catch::Contains("latency since start, seconds"));
  CHECK_THAT(table, Catch::Contains("production  4        <= 0.1"));
  CHECK(health_json(s)["latency_seconds"]["production"]["request_p99"] == "<= 1");
}
