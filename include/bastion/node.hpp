#pragma once
// The embedded API: run a Bastion node inside your own process.
//
//   bastion::node_options opts;
//   opts.name = "teller-1";
//   auto node = bastion::node::start(opts);   // throws bastion::start_error on bad options
//   bastion::health_report h = node->health();
//   node->stop();                             // also done by the destructor
//
// Serving models in-process (examples/integrator/main.cpp):
//
//   opts.config_file = "cluster/configs/single-site.toml";   // models, workers, policy
//   auto node = bastion::node::start(opts);                   // returns once models are loaded
//   bastion::request r;
//   r.model = "smollm2";
//   r.messages = {{"user", "What is the capital of France?"}};
//   auto s = node->submit(r);                 // or node->stream(r, on_text)
//   bastion::result answer = s.result.get();  // throws bastion::request_error
//
// Stable surface: no CAF, Cap'n Proto or kernel types appear here (pImpl). Those who use CAF
// themselves get actor handles from <bastion/interop.hpp>.

#include <bastion/request.hpp>
#include <bastion/version.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace bastion {

struct node_options {
  std::string name = "node-1";     // unique within the cluster
  std::string site = "prod";       // "prod", "dr-local" or "dr-remote"
  std::size_t worker_threads = 0;  // CAF scheduler threads; 0 = one per core

  /// A TOML node config (runtime/config/node_config.hpp documents every key). When set, the
  /// node loads the models and workers it names and serves them; its [node] section then
  /// supplies name, site and threads, and the three fields above are ignored.
  /// With gpu workers, set CUDA_DEVICE_ORDER=PCI_BUS_ID in your process before its first CUDA
  /// call (bastion-node does, when unset): then a worker's `device = N` is the GPU nvidia-smi
  /// and the bastion_gpu_* metrics call N (docs/decisions/0010). The node leaves your
  /// environment alone.
  std::string config_file;
  /// Open the config's HTTP (OpenAI-compatible) and Cap'n Proto RPC listeners. Off: the node
  /// serves only this process through submit() and stream().
  bool listen = false;
};

/// A request the node accepted: its id (the caller's or a minted one) and its outcome. The
/// future throws request_error when the request fails.
struct submission {
  std::string request_id;
  std::future<result> outcome;
};

/// Receives the text of a streamed request as it is generated, piece by piece (complete UTF-8
/// characters). Called on a node thread, never concurrently for one request: keep it short.
using text_callback = std::function<void(const std::string& piece)>;

struct health_report {
  std::string node;
  std::string site;
  std::string version;
  std::uint64_t uptime_ms = 0;
  std::string cpu_gemm;  // "openblas" or "builtin"
  bool cuda_built = false;
  std::vector<std::string> devices;  // one line per visible GPU
  std::string devices_note;          // why there are none, when there are none
  /// Why the node's GPUs are not sampled into its bastion_gpu_* metrics, or only partly;
  /// empty when every GPU is. For example "NVML not available: ..." (no driver library, or
  /// NVML failed to start), "device sampling off: node.device_sample_ms = 0", "devices not
  /// sampled yet" (just after start), or a CUDA device probe that failed.
  std::string device_sampling_note;
};

/// This node's place in the three-site cluster (its config's [cluster] section).
struct cluster_status {
  bool enabled = false;  // false: a single node, no journal
  bool ready = false;    // the ready primary: it admits and releases requests
  std::uint64_t epoch = 0;
  std::uint64_t term = 0;
  std::string phase;           // follower, committing_epoch, ..., ready
  std::string leader_address;  // where clients are sent when this node is not the primary
  std::string last_failure;    // the last readiness step that failed, for the operator
  std::uint16_t journal_port = 0;
};

/// Thrown by node::start when the options are refused; what() names the option and why.
class start_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thrown by calls on a node that cannot answer in time or has stopped.
class node_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class node {
 public:
  static std::unique_ptr<node> start(const node_options& options);
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Asks the node's health actor; throws node_error after `timeout`.
  health_report health(std::chrono::milliseconds timeout = std::chrono::seconds{5}) const;

  /// Starts one request. Errors found at once (no config, unknown model, bad parameters,
  /// overload) arrive through the future like every other failure.
  submission submit(const request& r);

  /// As submit(), and `on_text` receives the completion as it is generated.
  submission stream(const request& r, text_callback on_text);

  /// Stops a request: its future then holds a result with finish_reason::cancelled or a
  /// cancelled error. Unknown or finished ids are ignored.
  void cancel(const std::string& request_id);

  /// The model ids this node serves.
  std::vector<std::string> models() const;

  /// The node's metrics in the Prometheus text format.
  std::string metrics_text() const;

  /// Where this node stands in the cluster.
  cluster_status cluster() const;

  /// The bound listener ports (0 when not listening).
  std::uint16_t http_port() const;
  std::uint16_t rpc_port() const;

  /// Refuses new requests and waits at most `timeout` for running ones; true when all ended.
  bool drain(std::chrono::milliseconds timeout);

  /// Drains for at most the config's drain time, stops every actor and waits for them.
  /// Idempotent.
  void stop();

  /// Opaque outside Bastion; <bastion/interop.hpp> reaches the CAF handles through it.
  struct impl;
  impl* impl_for_interop() noexcept { return impl_.get(); }

 private:
  explicit node(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace bastion
