#pragma once
// The embedded API: run a Bastion node inside your own process.
//
//   bastion::node_options opts;
//   opts.name = "teller-1";
//   auto node = bastion::node::start(opts);   // throws bastion::start_error on bad options
//   bastion::health_report h = node->health();
//   node->stop();                             // also done by the destructor
//
// Stable surface: no CAF, Cap'n Proto or kernel types appear here (pImpl). Those who use CAF
// themselves get typed actor handles from <bastion/interop.hpp> (later).

#include <bastion/version.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace bastion {

struct node_options {
  std::string name = "node-1";     // unique within the cluster
  std::string site = "prod";       // "prod", "dr-local" or "dr-remote"
  std::size_t worker_threads = 0;  // CAF scheduler threads; 0 = one per core
};

struct health_report {
  std::string node;
  std::string site;
  std::string version;
  std::uint64_t uptime_ms = 0;
  std::string cpu_gemm;  // "openblas" or "builtin"
  bool cuda_built = false;
  std::vector<std::string> devices;  // one line per visible GPU
  std::string devices_note;          // why there are none, when there are none
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

  /// Stops every actor and waits for them. Idempotent.
  void stop();

 private:
  struct impl;
  explicit node(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace bastion
