#pragma once
// `bastion health`: what a site's node publishes (/healthz, /readyz, /metrics), as a table for
// a person (DESIGN.md §7, REQUIREMENTS 6.2: each GPU's memory use) or as JSON for a script.
// Built from the metrics text alone, so it shows exactly what Prometheus scrapes, and it needs
// no admin key.

#include "cluster/cli/prometheus_text.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace bastion::cli {

struct worker_health {
  std::string id;
  std::string kind;     // gpu, cpu, edge ("" from a node without bastion_worker_info)
  std::string backend;  // "cpu", "cuda:0", "cuda:0+1"
  bool healthy = false;
  double steps = 0, tokens = 0;
  std::optional<double> kv_used, kv_total;
  double recovery_probes = 0, recoveries = 0, group_rebuilds = 0, step_stalls = 0;
};

struct gpu_health {
  std::string device;  // NVML's index, as nvidia-smi numbers the GPUs
  std::string name, pci_bus_id;
  // NVML readings: absent until read, NaN while a reading that once worked fails.
  std::optional<double> temperature_celsius, power_watts, utilization_ratio;
  std::optional<double> memory_used_bytes, memory_total_bytes;
  std::string cuda_device;         // the CUDA ordinal of the same GPU, where a worker uses it
  std::optional<bool> responsive;  // CUDA builds, GPUs a worker uses
  double sample_errors = 0;        // readings NVML refused
};

/// One priority class's answer latencies since the node started, from its histograms: each
/// quantile as the bucket bound it falls under ("<= 0.25"), or "> 60" past the last bound.
struct class_latency {
  std::string priority_class;
  double answers = 0;
  std::string ttft_p50, ttft_p99, tpot_p50, tpot_p99, e2e_p50, e2e_p99;  // seconds
};

/// The bucket bound under which the q-quantile of a Prometheus histogram's observations falls:
/// `buckets` as (le, cumulative count), ascending, +Inf last. "" when there are none.
std::string bucket_quantile(const std::vector<std::pair<double, double>>& buckets, double q);

struct site_health {
  std::string site;
  std::string address;  // host:port of its HTTP listener
  std::string error;    // non-empty: the node did not answer (the rest is empty)
  bool alive = false;   // /healthz
  bool ready = false;   // /readyz: a ready primary (a single site is its own primary)
  // Requests by priority class, in the order the node publishes them (production first).
  std::vector<std::pair<std::string, double>> queued, running;
  std::vector<class_latency> latency;  // classes with answers
  std::vector<worker_health> workers;
  std::vector<gpu_health> gpus;
  // CUDA devices probed but not matched to an NVML GPU (no NVML, or an unmatched address).
  std::vector<std::pair<std::string, bool>> unmatched_cuda;  // ordinal, responsive
  std::vector<std::string> alerts;         // firing: "journal_peer_lagging peer 1"
  std::vector<std::string> metric_errors;  // lines of /metrics that could not be read
};

/// A site's health from its answers; `metrics_text` as /metrics served it.
site_health health_from(std::string site, std::string address, bool alive, bool ready,
                        std::string_view metrics_text);

/// Whether the site needs no one's attention: it answered, is alive, every worker is healthy
/// and every probed GPU responsive, and no alert fires. Readiness is not part of it: only one
/// site of a cluster is ready.
bool all_well(const site_health& s);

/// The table for people: a headline per site, then its workers and its GPUs.
std::string render_health(const std::vector<site_health>& sites);

/// One JSON object per site, the same figures (absent readings as null).
nlohmann::json health_json(const site_health& s);

}  // namespace bastion::cli
