#pragma once
// One typed configuration for a node (STYLE.md 10): node and site, listeners, models, workers,
// the scheduler's queues and capacity windows, and API keys. Loaded from a TOML file (and
// command-line overrides in the mains); every value is validated at start and a bad one is
// refused with its key path, the value and the reason. Unknown keys are refused too, so a
// misspelt setting never silently falls back to a default.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bastion::config {

struct node_section {
  std::string name = "node-1";
  std::string site = "prod";  // prod | dr-local | dr-remote
  std::size_t threads = 0;    // actor scheduler threads; 0 = one per core
  // How often the health actor reads the GPUs into metrics (temperature, power, utilisation,
  // memory; actors/health_actor.hpp). 0 = never; otherwise 100 ms to 1 h.
  std::uint32_t device_sample_ms = 5000;
};

struct listen_section {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0 = off
};

struct http_section {
  listen_section listen{"127.0.0.1", 8080};
  std::size_t body_bytes_max = std::size_t{1} << 20;
  std::size_t connections_max = 256;
  // A connection quiet this long is closed: HTTP with no request bytes, and RPC too (no call in
  // flight and no byte, or a message begun and stalled; actors/gateway/rpc_connection.hpp).
  std::uint32_t idle_timeout_ms = 30000;
};

struct model_section {
  std::string id;
  std::string path;             // a .gguf file or a Hugging Face folder
  std::string format = "gguf";  // gguf | hf
  std::string fallback;         // model id to use when no healthy worker serves this one
  std::uint32_t context_tokens_max = 4096;
};

struct worker_section {
  std::string id;
  std::string kind = "cpu";  // gpu | cpu | edge
  std::vector<std::string> models;
  std::uint32_t batch_max = 16;    // sequences per step
  std::uint32_t threads = 0;       // CPU backend compute threads, 0..256; 0 = one per core
  std::uint32_t kv_blocks = 1024;  // paged KV cache size, in blocks
  int device = -1;                 // CUDA device for gpu workers (devices[0])
  // A gpu worker's CUDA devices: one, or several for tensor parallelism (the model split
  // across them, kernels/engine/tp_decoder). `device = N` is `devices = [N]`.
  std::vector<int> devices;
  // After a failing step: the first wait before the worker probes its backend, doubling after
  // each failed probe up to the max.
  std::uint32_t recovery_backoff_ms = 100;
  std::uint32_t recovery_backoff_ms_max = 10000;
  // A device call (a step, a probe) that has not returned after this long is given up on: its
  // requests go to other workers and the worker is unhealthy until the call returns. 0: never.
  // Left out of the file, the reader sets 90 s on a gpu worker (past a tensor-parallel group's
  // own 60 s watch, which recovers without a restart) and 600 s on cpu and edge workers (room
  // for a long prefill of a large model).
  std::uint32_t step_stall_ms = 0;
};

struct window_section {
  std::string name;
  std::uint8_t days_mask = 0;  // bit 0 = Monday
  int start_minute = 0;
  int end_minute = 24 * 60;
  std::array<double, 4> reserve{0, 0, 0, 0};  // production, interactive, batch, training
  std::array<double, 4> limit{1, 1, 1, 1};
};

struct scheduler_section {
  int utc_offset_minutes = 0;  // "+08:00" in the file
  std::array<std::size_t, 4> queue_max{256, 256, 1024, 1024};
  std::uint32_t deadline_ms_default = 60000;
  std::uint32_t retry_after_ms_min = 50;
  std::uint32_t retry_after_ms_max = 30000;
  std::vector<window_section> windows;
};

struct api_key_section {
  std::string name;
  std::string key_sha256;            // hex SHA-256 of the key; the key itself is never stored
  std::vector<std::string> classes;  // priority classes this key may use
  bool admin = false;                // may use the operator's /admin/v1 endpoints (bastion CLI)
};

/// Another site's node in the replicated cluster (DESIGN.md §1, §5).
struct cluster_peer_section {
  std::uint64_t replica_id = 0;         // its Raft server id: unique, > 0
  std::string site;                     // prod | dr-local | dr-remote
  listen_section raft{"127.0.0.1", 0};  // where its journal link is published
  std::string http_address;  // host:port its gateway serves clients on (redirects go there)
  std::string rpc_address;   // host:port of its RPC service (may be empty)
};

/// [cluster]: this node's replica of the journal and the other sites. Absent: a single node
/// that releases answers without a journal.
struct cluster_section {
  bool enabled = false;  // the [cluster] table is present
  std::uint64_t replica_id = 0;
  std::string journal_dir;                     // created if missing; one node per directory
  listen_section raft_listen{"127.0.0.1", 0};  // this node's journal link (port 0: any)
  std::uint32_t election_timeout_ms = 1000;    // DESIGN.md §5: about 1 s
  std::uint32_t heartbeat_ms = 100;            // and about 100 ms
  std::uint32_t drain_timeout_ms = 5000;       // a handover waits this long for running work
  // The leader's alerts on its peers (actors/peer_watch.hpp): a peer whose oldest missing
  // entry is older than lag_alert_ms, or that has sent nothing for silence_alert_ms (0: three
  // election timeouts). Well under the 15 s RPO target, so the alert comes before the loss.
  std::uint32_t lag_alert_ms = 5000;
  std::uint32_t silence_alert_ms = 0;
  bool retain_output_text = true;  // journal answers so a retry after failover gets them
  std::vector<cluster_peer_section> peers;
};

struct node_config {
  node_section node;
  http_section http;
  listen_section rpc{"127.0.0.1", 0};
  std::vector<model_section> models;
  std::vector<worker_section> workers;
  scheduler_section scheduler;
  std::vector<api_key_section> api_keys;
  cluster_section cluster;
};

/// Result of loading: the config, or the reasons it was refused (all of them, one per line).
struct load_result {
  std::optional<node_config> config;
  std::vector<std::string> errors;
};

/// Parses and validates TOML text; `origin` names the file in messages.
load_result parse_node_config(const std::string& toml_text, const std::string& origin);
/// Reads and parses a file.
load_result load_node_config(const std::string& path);

}  // namespace bastion::config
