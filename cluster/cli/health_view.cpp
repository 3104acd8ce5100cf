#include "cluster/cli/health_view.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace bastion::cli {

namespace {

using json = nlohmann::json;

const metric_sample* find(const parsed_metrics& m, std::string_view name, std::string_view key,
                          std::string_view value) {
  for (const auto& s : m.samples)
    if (s.name == name && s.label(key) == value) return &s;
  return nullptr;
}

std::optional<double> value_of(const parsed_metrics& m, std::string_view name, std::string_view key,
                               std::string_view value) {
  const auto* s = find(m, name, key, value);
  if (!s) return std::nullopt;
  return s->value;
}

double count_of(const parsed_metrics& m, std::string_view name, std::string_view key,
                std::string_view value) {
  return value_of(m, name, key, value).value_or(0.0);
}

// Ids in the order the node first wrote them.
std::vector<std::string> ids_of(const parsed_metrics& m, std::string_view prefix,
                                std::string_view key) {
  std::vector<std::string> out;
  for (const auto& s : m.samples) {
    if (s.name.compare(0, prefix.size(), prefix) != 0) continue;
    const auto id = s.label(key);
    if (!id.empty() && std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  }
  return out;
}

std::string fixed(double v, int decimals) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// A reading for the table: "-" when never read, "n/a" while it fails (NaN).
std::string reading(const std::optional<double>& v, const std::string& unit, int decimals,
                    double scale = 1.0) {
  if (!v) return "-";
  if (std::isnan(*v)) return "n/a";
  return fixed(*v * scale, decimals) + unit;
}

std::string memory_text(const gpu_health& g) {
  constexpr double gib = 1024.0 * 1024.0 * 1024.0;
  if (!g.memory_used_bytes && !g.memory_total_bytes) return "-";
  std::string out = reading(g.memory_used_bytes, "", 1, 1.0 / gib) + " of " +
                    reading(g.memory_total_bytes, " GiB", 1, 1.0 / gib);
  if (g.memory_used_bytes && g.memory_total_bytes && !std::isnan(*g.memory_used_bytes) &&
      !std::isnan(*g.memory_total_bytes) && *g.memory_total_bytes > 0)
    out += " (" + fixed(100.0 * *g.memory_used_bytes / *g.memory_total_bytes, 0) + "%)";
  return out;
}

// Rows padded to their columns, two blanks apart, each line indented by two.
std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& r : rows)
    for (std::size_t c = 0; c < r.size(); ++c) {
      if (width.size() <= c) width.push_back(0);
      width[c] = std::max(width[c], r[c].size());
    }
  std::string out;
  for (const auto& r : rows) {
    std::string line = " ";
    for (std::size_t c = 0; c < r.size(); ++c) {
      line += " " + r[c];
      if (c + 1 < r.size()) line += std::string(width[c] - r[c].size() + 1, ' ');
    }
    out += line + "\n";
  }
  return out;
}

json optional_json(const std::optional<double>& v) {
  if (!v || std::isnan(*v) || std::isinf(*v)) return nullptr;
  return *v;
}

// A histogram's buckets for one class: (le, cumulative count), ascending.
std::vector<std::pair<double, double>> buckets_of(const parsed_metrics& m, const std::string& name,
                                                  const std::string& cls) {
  std::vector<std::pair<double, double>> out;
  for (const auto& s : m.samples) {
    if (s.name != name || s.label("class") != cls) continue;
    if (const auto le = parse_sample_value(s.label("le"))) out.emplace_back(*le, s.value);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string bucket_quantile(const std::vector<std::pair<double, double>>& buckets, double q) {
  if (buckets.empty() || buckets.back().second <= 0) return {};
  const double want = q * buckets.back().second;
  double last_finite = 0;
  for (const auto& [le, cumulative] : buckets) {
    if (std::isinf(le)) break;
    last_finite = le;
    if (cumulative >= want) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "<= %g", le);
      return buf;
    }
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "> %g", last_finite);
  return buf;
}

site_health health_from(std::string site, std::string address, bool alive, bool ready,
                        std::string_view metrics_text) {
  site_health out;
  out.site = std::move(site);
  out.address = std::move(address);
  out.alive = alive;
  out.ready = ready;
  const auto m = parse_prometheus_text(metrics_text);
  out.metric_errors = m.errors;

  for (const auto& smp : m.samples) {
    if (smp.name == "bastion_serving_queue_depth")
      out.queued.emplace_back(smp.label("class"), smp.value);
    if (smp.name == "bastion_serving_running")
      out.running.emplace_back(smp.label("class"), smp.value);
  }
  for (const auto& cls : ids_of(m, "bastion_serving_request_seconds", "class")) {
    const auto e2e = buckets_of(m, "bastion_serving_request_seconds_bucket", cls);
    if (e2e.empty() || e2e.back().second <= 0) continue;
    const auto ttft = buckets_of(m, "bastion_serving_time_to_first_token_seconds_bucket", cls);
    const auto tpot = buckets_of(m, "bastion_serving_time_per_output_token_seconds_bucket", cls);
    class_latency l;
    l.priority_class = cls;
    l.answers = e2e.back().second;
    l.ttft_p50 = bucket_quantile(ttft, 0.5);
    l.ttft_p99 = bucket_quantile(ttft, 0.99);
    l.tpot_p50 = bucket_quantile(tpot, 0.5);
    l.tpot_p99 = bucket_quantile(tpot, 0.99);
    l.e2e_p50 = bucket_quantile(e2e, 0.5);
    l.e2e_p99 = bucket_quantile(e2e, 0.99);
    out.latency.push_back(std::move(l));
  }
  for (const auto& id : ids_of(m, "bastion_worker_", "worker")) {
    worker_health w;
    w.id = id;
    if (const auto* info = find(m, "bastion_worker_info", "worker", id)) {
      w.kind = info->label("kind");
      w.backend = info->label("backend");
    }
    w.healthy = value_of(m, "bastion_worker_healthy", "worker", id).value_or(0.0) == 1.0;
    w.steps = count_of(m, "bastion_worker_steps_total", "worker", id);
    w.tokens = count_of(m, "bastion_worker_tokens_generated_total", "worker", id);
    w.kv_used = value_of(m, "bastion_worker_kv_blocks_used", "worker", id);
    w.kv_total = value_of(m, "bastion_worker_kv_blocks_total", "worker", id);
    w.recovery_probes = count_of(m, "bastion_worker_recovery_probes_total", "worker", id);
    w.recoveries = count_of(m, "bastion_worker_recoveries_total", "worker", id);
    w.group_rebuilds = count_of(m, "bastion_worker_group_rebuilds_total", "worker", id);
    w.step_stalls = count_of(m, "bastion_worker_step_stalls_total", "worker", id);
    out.workers.push_back(std::move(w));
  }

  // NVML's GPUs, by its index; the CUDA probes name theirs too when matched by PCI address.
  std::map<std::string, std::size_t> at;
  for (const auto& s : m.samples) {
    if (s.name.compare(0, 11, "bastion_gpu") != 0 || s.name == "bastion_gpu_responsive" ||
        s.name == "bastion_gpu_probe_failures_total")
      continue;
    const auto device = s.label("device");
    if (device.empty() || at.count(device)) continue;
    at[device] = out.gpus.size();
    gpu_health g;
    g.device = device;
    out.gpus.push_back(std::move(g));
  }
  for (auto& g : out.gpus) {
    if (const auto* info = find(m, "bastion_gpu_info", "device", g.device)) {
      g.name = info->label("name");
      g.pci_bus_id = info->label("pci_bus_id");
    }
    g.temperature_celsius = value_of(m, "bastion_gpu_temperature_celsius", "device", g.device);
    g.power_watts = value_of(m, "bastion_gpu_power_watts", "device", g.device);
    g.utilization_ratio = value_of(m, "bastion_gpu_utilization_ratio", "device", g.device);
    g.memory_used_bytes = value_of(m, "bastion_gpu_memory_used_bytes", "device", g.device);
    g.memory_total_bytes = value_of(m, "bastion_gpu_memory_total_bytes", "device", g.device);
    for (const auto& s : m.samples)
      if (s.name == "bastion_gpu_sample_errors_total" && s.label("device") == g.device)
        g.sample_errors += s.value;
  }
  for (const auto& s : m.samples) {
    if (s.name != "bastion_gpu_responsive") continue;
    const bool responsive = s.value == 1.0;
    const auto device = s.label("device");
    if (auto it = at.find(device); !device.empty() && it != at.end()) {
      auto& g = out.gpus[it->second];
      g.cuda_device = s.label("cuda_device");
      g.responsive = responsive;
    } else {
      out.unmatched_cuda.emplace_back(s.label("cuda_device"), responsive);
    }
  }

  for (const auto& s : m.samples) {
    if (s.name != "bastion_alert_firing" || s.value != 1.0) continue;
    std::string a = s.label("alert");
    for (const auto& [k, v] : s.labels)
      if (k != "alert") a += " " + k + " " + v;
    out.alerts.push_back(std::move(a));
  }
  return out;
}

bool all_well(const site_health& s) {
  if (!s.error.empty() || !s.alive || !s.alerts.empty()) return false;
  for (const auto& w : s.workers)
    if (!w.healthy) return false;
  for (const auto& g : s.gpus)
    if (g.responsive && !*g.responsive) return false;
  for (const auto& [ordinal, responsive] : s.unmatched_cuda)
    if (!responsive) return false;
  return true;
}

namespace {

std::string by_class(const std::vector<std::pair<std::string, double>>& v) {
  std::string t;
  for (const auto& [cls, n] : v) t += (t.empty() ? "" : ", ") + cls + " " + fixed(n, 0);
  return t.empty() ? std::string{"-"} : t;
}

std::string or_dash(const std::string& v) { return v.empty() ? std::string{"-"} : v; }

std::string latency_table(const std::vector<class_latency>& latency) {
  std::vector<std::vector<std::string>> rows{
      {"class", "answers", "first token p50", "p99", "per token p50", "p99", "answer p50", "p99"}};
  for (const auto& l : latency)
    rows.push_back({l.priority_class, fixed(l.answers, 0), or_dash(l.ttft_p50), or_dash(l.ttft_p99),
                    or_dash(l.tpot_p50), or_dash(l.tpot_p99), or_dash(l.e2e_p50),
                    or_dash(l.e2e_p99)});
  return "  latency since start, seconds (the bucket each quantile falls in):\n" + table(rows);
}

std::string workers_table(const std::vector<worker_health>& workers) {
  if (workers.empty()) return "  workers: none published\n";
  std::vector<std::vector<std::string>> rows{{"worker", "kind", "backend", "health", "steps",
                                              "tokens", "kv blocks", "probes", "recoveries",
                                              "rebuilds", "stalls"}};
  for (const auto& w : workers)
    rows.push_back({w.id, or_dash(w.kind), or_dash(w.backend), w.healthy ? "healthy" : "UNHEALTHY",
                    fixed(w.steps, 0), fixed(w.tokens, 0),
                    reading(w.kv_used, "", 0) + "/" + reading(w.kv_total, "", 0),
                    fixed(w.recovery_probes, 0), fixed(w.recoveries, 0), fixed(w.group_rebuilds, 0),
                    fixed(w.step_stalls, 0)});
  return table(rows);
}

std::string gpus_table(const site_health& s) {
  if (s.gpus.empty() && s.unmatched_cuda.empty())
    return "  gpus: none published (no NVML, or device sampling off)\n";
  std::vector<std::vector<std::string>> rows{
      {"gpu", "name", "pci", "temp", "power", "busy", "memory used", "cuda", "responsive"}};
  for (const auto& g : s.gpus)
    rows.push_back({g.device, or_dash(g.name), or_dash(g.pci_bus_id),
                    reading(g.temperature_celsius, " C", 0), reading(g.power_watts, " W", 0),
                    reading(g.utilization_ratio, "%", 0, 100.0), memory_text(g),
                    or_dash(g.cuda_device), !g.responsive ? "-" : (*g.responsive ? "yes" : "NO")});
  for (const auto& [ordinal, responsive] : s.unmatched_cuda)
    rows.push_back(
        {"?", "(no NVML match)", "-", "-", "-", "-", "-", ordinal, responsive ? "yes" : "NO"});
  return table(rows);
}

std::string site_text(const site_health& s) {
  std::string out = s.site + "  " + s.address + "  ";
  if (!s.error.empty()) return out + "DOWN: " + s.error + "\n";
  out += std::string{s.alive ? "alive" : "NOT ALIVE"} + ", " +
         (s.ready ? "ready (serving as primary)" : "not ready") +
         (all_well(s) ? "" : "  (needs attention)") + "\n";
  if (!s.queued.empty() || !s.running.empty())
    out += "  requests queued: " + by_class(s.queued) +
           "\n  requests running: " + by_class(s.running) + "\n";
  if (!s.latency.empty()) out += latency_table(s.latency);
  out += workers_table(s.workers);
  out += gpus_table(s);
  for (const auto& a : s.alerts) out += "  ALERT " + a + "\n";
  for (const auto& e : s.metric_errors) out += "  (unread /metrics " + e + ")\n";
  return out;
}

}  // namespace

std::string render_health(const std::vector<site_health>& sites) {
  std::string out;
  for (const auto& s : sites) out += (out.empty() ? "" : "\n") + site_text(s);
  return out;
}

json health_json(const site_health& s) {
  json out = {{"site", s.site}, {"address", s.address}};
  if (!s.error.empty()) {
    out["error"] = s.error;
    out["all_well"] = false;
    return out;
  }
  out["alive"] = s.alive;
  out["ready"] = s.ready;
  json queued = json::object(), running = json::object();
  for (const auto& [cls, n] : s.queued) queued[cls] = n;
  for (const auto& [cls, n] : s.running) running[cls] = n;
  out["requests_queued"] = std::move(queued);
  out["requests_running"] = std::move(running);
  json latency = json::object();
  for (const auto& l : s.latency)
    latency[l.priority_class] = {{"answers", l.answers},
                                 {"time_to_first_token_p50", l.ttft_p50},
                                 {"time_to_first_token_p99", l.ttft_p99},
                                 {"time_per_output_token_p50", l.tpot_p50},
                                 {"time_per_output_token_p99", l.tpot_p99},
                                 {"request_p50", l.e2e_p50},
                                 {"request_p99", l.e2e_p99}};
  out["latency_seconds"] = std::move(latency);
  out["all_well"] = all_well(s);
  json workers = json::array();
  for (const auto& w : s.workers)
    workers.push_back({{"id", w.id},
                       {"kind", w.kind},
                       {"backend", w.backend},
                       {"healthy", w.healthy},
                       {"steps", w.steps},
                       {"tokens_generated", w.tokens},
                       {"kv_blocks_used", optional_json(w.kv_used)},
                       {"kv_blocks_total", optional_json(w.kv_total)},
                       {"recovery_probes", w.recovery_probes},
                       {"recoveries", w.recoveries},
                       {"group_rebuilds", w.group_rebuilds},
                       {"step_stalls", w.step_stalls}});
  out["workers"] = std::move(workers);
  json gpus = json::array();
  for (const auto& g : s.gpus) {
    json j = {{"device", g.device},
              {"name", g.name},
              {"pci_bus_id", g.pci_bus_id},
              {"temperature_celsius", optional_json(g.temperature_celsius)},
              {"power_watts", optional_json(g.power_watts)},
              {"utilization_ratio", optional_json(g.utilization_ratio)},
              {"memory_used_bytes", optional_json(g.memory_used_bytes)},
              {"memory_total_bytes", optional_json(g.memory_total_bytes)},
              {"sample_errors", g.sample_errors}};
    j["cuda_device"] = g.cuda_device.empty() ? json(nullptr) : json(g.cuda_device);
    j["responsive"] = g.responsive ? json(*g.responsive) : json(nullptr);
    gpus.push_back(std::move(j));
  }
  for (const auto& [ordinal, responsive] : s.unmatched_cuda)
    gpus.push_back({{"device", nullptr}, {"cuda_device", ordinal}, {"responsive", responsive}});
  out["gpus"] = std::move(gpus);
  out["alerts"] = s.alerts;
  out["metric_errors"] = s.metric_errors;
  return out;
}

}  // namespace bastion::cli
