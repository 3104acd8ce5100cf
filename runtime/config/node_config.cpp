#include "runtime/config/node_config.hpp"

#include <toml++/toml.h>

#include <sys/stat.h>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

namespace bastion::config {
namespace {

const std::array<const char*, 4> class_names{"production", "interactive", "batch", "training"};

int class_index(const std::string& s) {
  for (std::size_t i = 0; i < class_names.size(); ++i)
    if (s == class_names[i]) return static_cast<int>(i);
  return -1;
}

std::string quote(const toml::node& v) {
  if (auto s = v.value<std::string>()) return "'" + *s + "'";
  std::ostringstream os;
  v.visit([&](auto&& x) { os << x; });
  return os.str();
}

// Walks one TOML table: typed reads with the key path in every message, and a final check
// that every key in the table was one we know.
class section {
 public:
  section(const toml::table* t, std::string path, std::vector<std::string>& errors)
      : table_(t), path_(std::move(path)), errors_(errors) {}
  section(const section&) = delete;
  section& operator=(const section&) = delete;
  ~section() {
    if (!table_) return;
    for (auto&& [k, v] : *table_)
      if (!known_.count(std::string{k.str()}))
        errors_.push_back(key(std::string{k.str()}) + " is not a known setting");
  }

  std::string key(const std::string& k) const { return path_.empty() ? k : path_ + "." + k; }
  void refuse(const std::string& k, const std::string& value, const std::string& why) {
    errors_.push_back(key(k) + " = " + value + " refused: " + why);
  }

  const toml::node* node(const std::string& k) {
    known_.insert(k);
    return table_ ? table_->get(k) : nullptr;
  }
  const toml::table* table(const std::string& k) {
    const auto* n = node(k);
    if (n && !n->is_table()) refuse(k, quote(*n), "must be a table");
    return n ? n->as_table() : nullptr;
  }
  const toml::array* array(const std::string& k) {
    const auto* n = node(k);
    if (n && !n->is_array()) refuse(k, quote(*n), "must be an array");
    return n ? n->as_array() : nullptr;
  }

  void get(const std::string& k, std::string& out) {
    if (const auto* n = node(k)) {
      if (auto v = n->value<std::string>())
        out = *v;
      else
        refuse(k, quote(*n), "must be a string");
    }
  }
  template <class Int>
  void get_int(const std::string& k, Int& out, std::int64_t lo, std::int64_t hi) {
    if (const auto* n = node(k)) {
      auto v = n->is_integer() ? n->value<std::int64_t>() : std::nullopt;
      if (!v)
        refuse(k, quote(*n), "must be an integer");
      else if (*v < lo || *v > hi)
        refuse(k, std::to_string(*v),
               "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
      else
        out = static_cast<Int>(*v);
    }
  }
  void get_share(const std::string& k, double& out) {
    if (const auto* n = node(k)) {
      auto v = (n->is_floating_point() || n->is_integer()) ? n->value<double>() : std::nullopt;
      if (!v)
        refuse(k, quote(*n), "must be a number");
      else if (!(*v >= 0.0 && *v <= 1.0))
        refuse(k, quote(*n), "must be a fraction between 0 and 1");
      else
        out = *v;
    }
  }
  void get_bool(const std::string& k, bool& out) {
    if (const auto* n = node(k)) {
      if (auto v = n->value<bool>())
        out = *v;
      else
        refuse(k, quote(*n), "must be true or false");
    }
  }
  template <class Int>
  void get_ints(const std::string& k, std::vector<Int>& out, std::int64_t lo, std::int64_t hi) {
    if (const auto* a = array(k)) {
      out.clear();
      for (std::size_t i = 0; i < a->size(); ++i) {
        const std::string at = k + "[" + std::to_string(i) + "]";
        auto v = (*a)[i].is_integer() ? (*a)[i].value<std::int64_t>() : std::nullopt;
        if (!v)
          refuse(at, quote((*a)[i]), "must be an integer");
        else if (*v < lo || *v > hi)
          refuse(at, std::to_string(*v),
                 "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
        else
          out.push_back(static_cast<Int>(*v));
      }
    }
  }
  void get_strings(const std::string& k, std::vector<std::string>& out) {
    if (const auto* a = array(k)) {
      out.clear();
      for (std::size_t i = 0; i < a->size(); ++i) {
        if (auto v = (*a)[i].value<std::string>())
          out.push_back(*v);
        else
          refuse(k + "[" + std::to_string(i) + "]", quote((*a)[i]), "must be a string");
      }
    }
  }

 private:
  const toml::table* table_;
  std::string path_;
  std::vector<std::string>& errors_;
  std::set<std::string> known_;
};

std::string list_of(const std::vector<int>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
  return out + "]";
}

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return false;
  return true;
}

bool path_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

std::string expand_home(const std::string& p) {
  if (p.rfind("~/", 0) != 0) return p;
  const char* home = std::getenv("HOME");
  return std::string{home ? home : ""} + p.substr(1);
}

// "HH:MM", 00:00 to 24:00.
std::optional<int> parse_minute(const std::string& s) {
  if (s.size() != 5 || s[2] != ':' || !std::isdigit(static_cast<unsigned char>(s[0])) ||
      !std::isdigit(static_cast<unsigned char>(s[1])) ||
      !std::isdigit(static_cast<unsigned char>(s[3])) ||
      !std::isdigit(static_cast<unsigned char>(s[4])))
    return std::nullopt;
  const int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
  if (m > 59 || h > 24 || (h == 24 && m != 0)) return std::nullopt;
  return h * 60 + m;
}

// "UTC", "+08:00", "-05:30".
std::optional<int> parse_offset(const std::string& s) {
  if (s == "UTC" || s == "Z") return 0;
  if (s.size() != 6 || (s[0] != '+' && s[0] != '-')) return std::nullopt;
  auto m = parse_minute(s.substr(1));
  if (!m || *m > 14 * 60) return std::nullopt;
  return s[0] == '-' ? -*m : *m;
}

std::optional<std::uint8_t> parse_days(const std::vector<std::string>& days) {
  static const std::array<const char*, 7> names{"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
  std::uint8_t mask = 0;
  for (const auto& d : days) {
    if (d == "weekdays") {
      mask |= 0x1f;
      continue;
    }
    if (d == "weekend") {
      mask |= 0x60;
      continue;
    }
    bool found = false;
    for (std::size_t i = 0; i < names.size(); ++i)
      if (d == names[i]) {
        mask = static_cast<std::uint8_t>(mask | (1u << i));
        found = true;
      }
    if (!found) return std::nullopt;
  }
  return mask;
}

void read_shares(section& parent, const std::string& k, std::vector<std::string>& errors,
                 std::array<double, 4>& out) {
  const auto* t = parent.table(k);
  if (!t) return;
  section s{t, parent.key(k), errors};
  for (std::size_t c = 0; c < class_names.size(); ++c) s.get_share(class_names[c], out[c]);
}

void read_listen(section& parent, const std::string& k, listen_section& out) {
  std::string text;
  parent.get(k, text);
  if (text.empty()) return;
  const auto colon = text.rfind(':');
  std::uint32_t port = 0;
  bool ok = colon != std::string::npos && colon > 0 && colon + 1 < text.size() &&
            text.size() - colon <= 6;
  for (std::size_t i = colon + 1; ok && i < text.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(text[i])))
      ok = false;
    else
      port = port * 10 + static_cast<std::uint32_t>(text[i] - '0');
  }
  if (!ok || port > 65535) {
    parent.refuse(k, "'" + text + "'", "must be host:port with a port from 0 to 65535");
    return;
  }
  out.host = text.substr(0, colon);
  out.port = static_cast<std::uint16_t>(port);
}

void read_node(section& root, std::vector<std::string>& errors, node_config& cfg) {
  section s{root.table("node"), "node", errors};
  s.get("name", cfg.node.name);
  if (!valid_name(cfg.node.name))
    s.refuse("name", "'" + cfg.node.name + "'", "1 to 64 letters, digits, '-', '_' or '.'");
  s.get("site", cfg.node.site);
  if (cfg.node.site != "prod" && cfg.node.site != "dr-local" && cfg.node.site != "dr-remote")
    s.refuse("site", "'" + cfg.node.site + "'", "must be one of prod, dr-local, dr-remote");
  s.get_int("threads", cfg.node.threads, 0, 256);
  s.get_int("device_sample_ms", cfg.node.device_sample_ms, 0, 3600000);
  // Below 100 ms the samples cost more than they tell: NVML itself averages over 1/6 s to 1 s.
  if (cfg.node.device_sample_ms > 0 && cfg.node.device_sample_ms < 100)
    s.refuse("device_sample_ms", std::to_string(cfg.node.device_sample_ms),
             "must be 0 (off) or at least 100");
}

void read_http(section& root, std::vector<std::string>& errors, node_config& cfg) {
  section s{root.table("http"), "http", errors};
  read_listen(s, "listen", cfg.http.listen);
  s.get_int("body_bytes_max", cfg.http.body_bytes_max, 1024, std::int64_t{64} << 20);
  s.get_int("connections_max", cfg.http.connections_max, 1, 100000);
  s.get_int("idle_timeout_ms", cfg.http.idle_timeout_ms, 100, 3600000);
  section rpc{root.table("rpc"), "rpc", errors};
  read_listen(rpc, "listen", cfg.rpc);
}

void read_models(section& root, std::vector<std::string>& errors, node_config& cfg) {
  const auto* arr = root.array("models");
  if (!arr) return;
  std::set<std::string> ids;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const std::string path = "models[" + std::to_string(i) + "]";
    const auto* t = (*arr)[i].as_table();
    if (!t) {
      errors.push_back(path + " must be a table");
      continue;
    }
    section s{t, path, errors};
    model_section m;
    s.get("id", m.id);
    if (!valid_name(m.id))
      s.refuse("id", "'" + m.id + "'", "1 to 64 letters, digits, '-', '_' or '.'");
    else if (!ids.insert(m.id).second)
      s.refuse("id", "'" + m.id + "'", "another model has this id");
    s.get("path", m.path);
    m.path = expand_home(m.path);
    if (m.path.empty())
      s.refuse("path", "''", "a model needs a file or folder");
    else if (!path_exists(m.path))
      s.refuse("path", "'" + m.path + "'", "no such file or folder");
    s.get("format", m.format);
    if (m.format != "gguf" && m.format != "hf")
      s.refuse("format", "'" + m.format + "'", "must be gguf or hf");
    s.get("fallback", m.fallback);
    s.get_int("context_tokens_max", m.context_tokens_max, 16, 1 << 20);
    cfg.models.push_back(std::move(m));
  }
  for (std::size_t i = 0; i < cfg.models.size(); ++i) {
    const auto& m = cfg.models[i];
    if (m.fallback.empty()) continue;
    const std::string k =
        "models[" + std::to_string(i) + "].fallback = '" + m.fallback + "' refused: ";
    if (m.fallback == m.id)
      errors.push_back(k + "a model cannot be its own fallback");
    else if (!ids.count(m.fallback))
      errors.push_back(k + "no model has this id");
  }
}

void read_workers(section& root, std::vector<std::string>& errors, node_config& cfg) {
  const auto* arr = root.array("workers");
  if (!arr) return;
  std::set<std::string> ids, models;
  for (const auto& m : cfg.models) models.insert(m.id);
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const std::string path = "workers[" + std::to_string(i) + "]";
    const auto* t = (*arr)[i].as_table();
    if (!t) {
      errors.push_back(path + " must be a table");
      continue;
    }
    section s{t, path, errors};
    worker_section w;
    s.get("id", w.id);
    if (!valid_name(w.id))
      s.refuse("id", "'" + w.id + "'", "1 to 64 letters, digits, '-', '_' or '.'");
    else if (!ids.insert(w.id).second)
      s.refuse("id", "'" + w.id + "'", "another worker has this id");
    s.get("kind", w.kind);
    if (w.kind != "gpu" && w.kind != "cpu" && w.kind != "edge")
      s.refuse("kind", "'" + w.kind + "'", "must be one of gpu, cpu, edge");
    s.get_strings("models", w.models);
    if (w.models.empty()) s.refuse("models", "[]", "a worker must serve at least one model");
    for (const auto& m : w.models)
      if (!models.count(m)) s.refuse("models", "'" + m + "'", "no model has this id");
    s.get_int("batch_max", w.batch_max, 1, 1024);
    // The CPU backend runs at most 256 threads per operation (0: one per core).
    s.get_int("threads", w.threads, 0, 256);
    s.get_int("kv_blocks", w.kv_blocks, 1, 1 << 22);
    s.get_int("device", w.device, -1, 1023);
    s.get_ints("devices", w.devices, 0, 1023);
    if (w.kind != "gpu" && w.device >= 0)
      s.refuse("device", std::to_string(w.device), "only gpu workers use a device");
    if (w.kind != "gpu" && !w.devices.empty())
      s.refuse("devices", list_of(w.devices), "only gpu workers use devices");
    if (w.kind == "gpu") {
      if (w.device >= 0 && !w.devices.empty())
        s.refuse("device", std::to_string(w.device), "give device or devices, not both");
      // One node's GPUs: NCCL within a node; the design's largest split is 70B on 8.
      if (w.devices.size() > 8)
        s.refuse("devices", list_of(w.devices), "at most 8 devices, the GPUs of one node");
      for (std::size_t d = 0; d < w.devices.size(); ++d)
        for (std::size_t e = 0; e < d; ++e)
          if (w.devices[d] == w.devices[e])
            s.refuse(
                "devices", list_of(w.devices),
                "cuda:" + std::to_string(w.devices[d]) + " appears twice (a device runs one rank)");
      if (w.devices.empty()) w.devices = {std::max(0, w.device)};
      w.device = w.devices.front();
    }
    w.step_stall_ms = w.kind == "gpu" ? 90000 : 600000;
    s.get_int("step_stall_ms", w.step_stall_ms, 0, 86400000);
    if (w.step_stall_ms > 0 && w.step_stall_ms < 1000)
      s.refuse("step_stall_ms", std::to_string(w.step_stall_ms),
               "at least 1000 (a normal step must never be given up on), or 0 to never give up");
    s.get_int("recovery_backoff_ms", w.recovery_backoff_ms, 1, 3600000);
    s.get_int("recovery_backoff_ms_max", w.recovery_backoff_ms_max, 1, 3600000);
    if (w.recovery_backoff_ms_max < w.recovery_backoff_ms)
      s.refuse(
          "recovery_backoff_ms_max", std::to_string(w.recovery_backoff_ms_max),
          "must be at least recovery_backoff_ms (" + std::to_string(w.recovery_backoff_ms) + ")");
    if (w.kind == "gpu" && w.threads != 0)
      s.refuse("threads", std::to_string(w.threads),
               "only cpu and edge workers run compute threads; a gpu worker runs on its device");
    cfg.workers.push_back(std::move(w));
  }
}

void read_scheduler(section& root, std::vector<std::string>& errors, node_config& cfg) {
  section s{root.table("scheduler"), "scheduler", errors};
  auto& sc = cfg.scheduler;
  std::string tz = "UTC";
  s.get("timezone", tz);
  if (auto off = parse_offset(tz))
    sc.utc_offset_minutes = *off;
  else
    s.refuse("timezone", "'" + tz + "'", "must be UTC or an offset like +08:00");
  if (const auto* q = s.table("queue_max")) {
    section qs{q, s.key("queue_max"), errors};
    for (std::size_t c = 0; c < class_names.size(); ++c)
      qs.get_int(class_names[c], sc.queue_max[c], 1, 1000000);
  }
  s.get_int("deadline_ms_default", sc.deadline_ms_default, 10, 86400000);
  s.get_int("retry_after_ms_min", sc.retry_after_ms_min, 1, 3600000);
  s.get_int("retry_after_ms_max", sc.retry_after_ms_max, 1, 3600000);
  if (sc.retry_after_ms_max < sc.retry_after_ms_min)
    s.refuse("retry_after_ms_max", std::to_string(sc.retry_after_ms_max),
             "is below retry_after_ms_min");
  const auto* arr = s.array("windows");
  if (!arr) return;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const std::string path = s.key("windows[" + std::to_string(i) + "]");
    const auto* t = (*arr)[i].as_table();
    if (!t) {
      errors.push_back(path + " must be a table");
      continue;
    }
    section ws{t, path, errors};
    window_section w;
    ws.get("name", w.name);
    if (!valid_name(w.name))
      ws.refuse("name", "'" + w.name + "'", "1 to 64 letters, digits, '-', '_' or '.'");
    std::vector<std::string> days;
    ws.get_strings("days", days);
    auto mask = parse_days(days);
    if (!mask || *mask == 0)
      ws.refuse("days", "[...]", "list of mon..sun, weekdays or weekend, not empty");
    else
      w.days_mask = *mask;
    std::string start = "00:00", end = "24:00";
    ws.get("start", start);
    ws.get("end", end);
    auto sm = parse_minute(start), em = parse_minute(end);
    if (!sm || *sm == 24 * 60)
      ws.refuse("start", "'" + start + "'", "must be HH:MM from 00:00 to 23:59");
    else
      w.start_minute = *sm;
    if (!em)
      ws.refuse("end", "'" + end + "'", "must be HH:MM from 00:00 to 24:00");
    else
      w.end_minute = *em;
    read_shares(ws, "reserve", errors, w.reserve);
    read_shares(ws, "limit", errors, w.limit);
    double reserved = 0;
    for (std::size_t c = 0; c < 4; ++c) {
      reserved += w.reserve[c];
      if (w.limit[c] < w.reserve[c])
        ws.refuse(std::string{"limit."} + class_names[c], std::to_string(w.limit[c]),
                  "is below the class's reserve of " + std::to_string(w.reserve[c]));
    }
    if (reserved > 1.0 + 1e-9)
      ws.refuse("reserve", std::to_string(reserved), "reserves add up to more than all capacity");
    sc.windows.push_back(std::move(w));
  }
}

void read_api_keys(section& root, std::vector<std::string>& errors, node_config& cfg) {
  const auto* arr = root.array("api_keys");
  if (!arr) return;
  std::set<std::string> names;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const std::string path = "api_keys[" + std::to_string(i) + "]";
    const auto* t = (*arr)[i].as_table();
    if (!t) {
      errors.push_back(path + " must be a table");
      continue;
    }
    section s{t, path, errors};
    api_key_section k;
    s.get("name", k.name);
    if (!valid_name(k.name))
      s.refuse("name", "'" + k.name + "'", "1 to 64 letters, digits, '-', '_' or '.'");
    else if (!names.insert(k.name).second)
      s.refuse("name", "'" + k.name + "'", "another key has this name");
    s.get("key_sha256", k.key_sha256);
    bool hex = k.key_sha256.size() == 64;
    for (char c : k.key_sha256) hex = hex && std::isxdigit(static_cast<unsigned char>(c));
    if (!hex)
      s.refuse("key_sha256", "'" + k.key_sha256 + "'",
               "must be 64 hex digits (the SHA-256 of the key, never the key)");
    s.get_strings("classes", k.classes);
    if (k.classes.empty()) k.classes = {"interactive"};
    for (const auto& c : k.classes)
      if (class_index(c) < 0)
        s.refuse("classes", "'" + c + "'", "must be production, interactive, batch or training");
    s.get_bool("admin", k.admin);
    cfg.api_keys.push_back(std::move(k));
  }
}

bool valid_site(const std::string& s) { return s == "prod" || s == "dr-local" || s == "dr-remote"; }

void read_cluster(section& root, std::vector<std::string>& errors, node_config& cfg) {
  const auto* t = root.table("cluster");
  if (!t) return;
  section s{t, "cluster", errors};
  auto& c = cfg.cluster;
  c.enabled = true;
  s.get_int("replica_id", c.replica_id, 1, std::int64_t{1} << 32);
  if (c.replica_id == 0) s.refuse("replica_id", "(missing)", "every replica needs an id > 0");
  s.get("journal_dir", c.journal_dir);
  c.journal_dir = expand_home(c.journal_dir);
  if (c.journal_dir.empty()) s.refuse("journal_dir", "''", "the journal needs a directory");
  read_listen(s, "raft_listen", c.raft_listen);
  s.get_int("election_timeout_ms", c.election_timeout_ms, 50, 60000);
  s.get_int("heartbeat_ms", c.heartbeat_ms, 10, 10000);
  if (c.heartbeat_ms * 2 > c.election_timeout_ms)
    s.refuse("heartbeat_ms", std::to_string(c.heartbeat_ms),
             "must be at most half of election_timeout_ms (" +
                 std::to_string(c.election_timeout_ms) + ")");
  s.get_int("drain_timeout_ms", c.drain_timeout_ms, 0, 600000);
  s.get_int("lag_alert_ms", c.lag_alert_ms, 100, 3600000);
  s.get_int("silence_alert_ms", c.silence_alert_ms, 0, 3600000);
  if (c.silence_alert_ms == 0)
    c.silence_alert_ms = 3 * c.election_timeout_ms;
  else if (c.silence_alert_ms < c.election_timeout_ms)
    s.refuse("silence_alert_ms", std::to_string(c.silence_alert_ms),
             "must be at least election_timeout_ms (" + std::to_string(c.election_timeout_ms) +
                 "): a peer is silent between heartbeats by design");
  if (const auto* n = s.node("retain_output_text")) {
    if (auto v = n->value<bool>())
      c.retain_output_text = *v;
    else
      s.refuse("retain_output_text", quote(*n), "must be true or false");
  }
  const auto* arr = s.array("peers");
  std::set<std::uint64_t> ids{c.replica_id};
  std::set<std::string> sites{cfg.node.site};
  for (std::size_t i = 0; arr && i < arr->size(); ++i) {
    const std::string path = "cluster.peers[" + std::to_string(i) + "]";
    const auto* pt = (*arr)[i].as_table();
    if (!pt) {
      errors.push_back(path + " must be a table");
      continue;
    }
    section ps{pt, path, errors};
    cluster_peer_section p;
    ps.get_int("replica_id", p.replica_id, 1, std::int64_t{1} << 32);
    if (p.replica_id == 0)
      ps.refuse("replica_id", "(missing)", "every replica needs an id > 0");
    else if (!ids.insert(p.replica_id).second)
      ps.refuse("replica_id", std::to_string(p.replica_id),
                "another replica (or this node) has this id");
    ps.get("site", p.site);
    if (!valid_site(p.site))
      ps.refuse("site", "'" + p.site + "'", "must be one of prod, dr-local, dr-remote");
    else if (!sites.insert(p.site).second)
      ps.refuse("site", "'" + p.site + "'", "another node of the cluster is at this site");
    read_listen(ps, "raft", p.raft);
    if (p.raft.port == 0) ps.refuse("raft", "(missing)", "a peer's journal link needs host:port");
    ps.get("http_address", p.http_address);
    ps.get("rpc_address", p.rpc_address);
    c.peers.push_back(std::move(p));
  }
  if (c.peers.size() > 8) s.refuse("peers", std::to_string(c.peers.size()), "at most 8 peers");
}

}  // namespace

load_result parse_node_config(const std::string& text, const std::string& origin) {
  load_result out;
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << origin << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
       << e.description();
    out.errors.push_back(os.str());
    return out;
  }
  node_config cfg;
  {
    section top{&root, "", out.errors};
    read_node(top, out.errors, cfg);
    read_http(top, out.errors, cfg);
    read_models(top, out.errors, cfg);
    read_workers(top, out.errors, cfg);
    read_scheduler(top, out.errors, cfg);
    read_api_keys(top, out.errors, cfg);
    read_cluster(top, out.errors, cfg);
  }  // top's destructor reports unknown top-level keys
  for (auto& e : out.errors) e = origin + ": " + e;
  if (out.errors.empty()) out.config = std::move(cfg);
  return out;
}

load_result load_node_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {std::nullopt, {path + ": cannot read the configuration file"}};
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_node_config(ss.str(), path);
}

}  // namespace bastion::config
