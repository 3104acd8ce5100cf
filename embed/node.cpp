// The node's lifecycle (include/bastion/node.hpp): options and config checked, the actor
// system, the health actor, the serving machinery and the gateway started and stopped in order.

#include <bastion/node.hpp>

#include "actors/replicator.hpp"
#include "embed/node_impl.hpp"
#include "runtime/wire/announce.hpp"

#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>

#include <cctype>
#include <sstream>

namespace bastion {

const char* version() noexcept { return BASTION_VERSION_STRING; }

namespace {

void validate(const node_options& o) {
  auto refuse = [](const std::string& key, const std::string& value, const std::string& why) {
    throw start_error("node option '" + key + "' = '" + value + "' refused: " + why);
  };
  if (o.name.empty() || o.name.size() > 64) refuse("name", o.name, "must be 1 to 64 characters");
  for (char c : o.name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      refuse("name", o.name, "only letters, digits, '-', '_' and '.' are allowed");
  if (o.site != "prod" && o.site != "dr-local" && o.site != "dr-remote")
    refuse("site", o.site, "must be one of prod, dr-local, dr-remote");
  if (o.worker_threads > 256)
    refuse("worker_threads", std::to_string(o.worker_threads), "at most 256");
  if (o.listen && o.config_file.empty())
    refuse("listen", "true", "the listeners come from a config: set config_file too");
}

/// The CUDA devices the config's gpu workers use: the ones the health actor probes.
std::vector<int> gpu_worker_devices(const std::optional<config::node_config>& cfg) {
  std::vector<int> out;
  if (!cfg) return out;
  for (const auto& w : cfg->workers)
    if (w.kind == "gpu") out.insert(out.end(), w.devices.begin(), w.devices.end());
  return out;
}

/// The config named by the options, with [node] copied over the options it supersedes.
std::optional<config::node_config> load_config(node_options& o) {
  if (o.config_file.empty()) return std::nullopt;
  auto loaded = config::load_node_config(o.config_file);
  if (!loaded.config) {
    std::ostringstream msg;
    msg << "config '" << o.config_file << "' refused:";
    for (const auto& e : loaded.errors) msg << "\n  " << e;
    throw start_error(msg.str());
  }
  o.name = loaded.config->node.name;
  o.site = loaded.config->node.site;
  o.worker_threads = loaded.config->node.threads;
  return loaded.config;
}

}  // namespace

node::impl::impl(const node_options& o, std::optional<config::node_config> c)
    : options(o), cfg(std::move(c)) {
  wire::announce_wire_types(system_config);
  actors::announce_replicator_types(system_config);
  system_config.load<caf::io::middleman>();
  if (cfg && cfg->cluster.enabled) {
    // CAF's own link failure detection backs up Raft's (docs/decisions/0008): with 0.17's
    // defaults a peer that vanishes without a FIN (power loss, SIGSTOP, a cut cable) keeps its
    // dead connection for minutes, and the journal link is not re-made until the middleman
    // gives it up. Heartbeats every 5 Raft heartbeats and a connection given up after 3
    // election timeouts notice it within seconds, yet never before Raft itself has.
    const auto& cl = cfg->cluster;
    system_config.set("middleman.heartbeat-interval",
                      caf::timespan{std::chrono::milliseconds{5 * cl.heartbeat_ms}});
    system_config.set("middleman.connection-timeout",
                      caf::timespan{std::chrono::milliseconds{3 * cl.election_timeout_ms}});
  }
  if (o.worker_threads > 0) system_config.set("scheduler.max-threads", o.worker_threads);
  system_config.set("logger.console-verbosity", caf::atom("quiet"));
  system.emplace(system_config);
  // Detached: loading NVML (seconds without persistence mode) and a CUDA probe waiting on a
  // busy or stuck device block this actor's own thread, never one the workers' actors share.
  health = system->spawn<caf::detached>(
      actors::health_actor_impl, actors::node_identity{o.name, o.site}, &clock,
      actors::node_device_sampling(registry,
                                   (cfg ? cfg->node : config::node_section{}).device_sample_ms,
                                   gpu_worker_devices(cfg)));
  if (!cfg) return;
  auto started = serving::local_serving::start(*system, *cfg, registry);
  if (!started) {
    const auto why = system->render(started.error());
    stop();
    throw start_error("node '" + o.name + "' could not start serving: " + why);
  }
  serving = std::move(*started);
  if (cfg->cluster.enabled) {
    try {
      member = std::make_unique<cluster_member>(*system, *cfg, *serving, registry, clock);
    } catch (...) {
      stop();
      throw;
    }
  }
  if (!o.listen) return;
  // /readyz: in a cluster, only the ready primary (DESIGN.md §5); alone, while running.
  std::function<bool()> ready = [this] { return !stopped; };
  if (member) ready = [this] { return !stopped && member->state().ready; };
  gateway = std::make_unique<gateway::gateway_server>(gateway::settings_from_config(*cfg), *port(),
                                                      registry, clock, std::move(ready));
  if (member) gateway->set_admin(&member->admin());
  if (auto err = gateway->start()) {
    stop();
    throw start_error("node '" + o.name + "' could not open its listeners: " + *err);
  }
}

node::impl::~impl() { stop(); }

void node::impl::stop() {
  if (stopped.exchange(true)) return;
  if (gateway) gateway->stop();  // drains its in-flight requests first
  gateway.reset();
  member.reset();   // the coordinator and the replicator stop before the serving they call
  serving.reset();  // drains with a zero timeout, stops workers and their step threads
  if (health) caf::anon_send_exit(health, caf::exit_reason::user_shutdown);
  health = nullptr;
  system.reset();  // joins every actor and the middleman
}

node::node(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

node::~node() { stop(); }

std::unique_ptr<node> node::start(const node_options& options) {
  node_options effective = options;
  validate(effective);
  auto cfg = load_config(effective);
  validate(effective);  // the config's [node] values pass the same checks
  return std::unique_ptr<node>(new node(std::make_unique<impl>(effective, std::move(cfg))));
}

health_report node::health(std::chrono::milliseconds timeout) const {
  if (impl_->stopped) throw node_error("node '" + impl_->options.name + "' is stopped");
  caf::scoped_actor self{*impl_->system};
  std::optional<health_report> out;
  std::string failure;
  self->request(impl_->health, timeout, actors::get_health_atom::value)
      .receive(
          [&](const actors::node_health& h) {
            out = health_report{h.node,      h.site,         BASTION_VERSION_STRING,
                                h.uptime_ms, h.cpu_gemm,     h.cuda_built,
                                h.devices,   h.devices_note, h.device_sampling_note};
          },
          [&](const caf::error& err) { failure = impl_->system->render(err); });
  if (!out) throw node_error("health request failed: " + failure);
  return *out;
}

std::string node::metrics_text() const { return impl_->registry.render_prometheus(); }

std::uint16_t node::http_port() const { return impl_->gateway ? impl_->gateway->http_port() : 0; }

std::uint16_t node::rpc_port() const { return impl_->gateway ? impl_->gateway->rpc_port() : 0; }

cluster_status node::cluster() const {
  cluster_status out;
  if (!impl_->member || impl_->stopped) return out;
  const auto s = impl_->member->state();
  out.enabled = true;
  out.ready = s.ready;
  out.epoch = s.epoch;
  out.term = s.term;
  out.phase = s.phase;
  out.leader_address = s.leader_address;
  out.last_failure = s.last_failure;
  out.journal_port = impl_->member->journal_port();
  return out;
}

bool node::drain(std::chrono::milliseconds timeout) {
  if (impl_->stopped || !impl_->serving) return true;
  return impl_->serving->drain(timeout);
}

void node::stop() {
  if (impl_) impl_->stop();
}

}  // namespace bastion
