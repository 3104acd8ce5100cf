// Implementation of include/bastion/node.hpp: owns an actor system and the node's actors.

#include <bastion/node.hpp>

#include "actors/health_actor.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/wire/announce.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>

#include <cctype>
#include <optional>

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
}

}  // namespace

struct node::impl {
  explicit impl(const node_options& o) : options(o) {
    wire::announce_wire_types(config);
    config.load<caf::io::middleman>();
    if (o.worker_threads > 0) config.set("scheduler.max-threads", o.worker_threads);
    config.set("logger.console-verbosity", caf::atom("quiet"));
    system.emplace(config);
    health =
        system->spawn(actors::health_actor_impl, actors::node_identity{o.name, o.site}, &clock);
  }

  // Members in teardown order, last declared is destroyed first (STYLE.md 12).
  node_options options;
  system_clock_source clock;
  caf::actor_system_config config;
  std::optional<caf::actor_system> system;
  actors::health_actor health;
  bool stopped = false;
};

node::node(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

node::~node() { stop(); }

std::unique_ptr<node> node::start(const node_options& options) {
  validate(options);
  return std::unique_ptr<node>(new node(std::make_unique<impl>(options)));
}

health_report node::health(std::chrono::milliseconds timeout) const {
  if (impl_->stopped) throw node_error("node '" + impl_->options.name + "' is stopped");
  caf::scoped_actor self{*impl_->system};
  std::optional<health_report> out;
  std::string failure;
  self->request(impl_->health, timeout, actors::get_health_atom::value)
      .receive(
          [&](const actors::node_health& h) {
            out = health_report{h.node,      h.site,        BASTION_VERSION_STRING,
                                h.uptime_ms, h.cpu_gemm,    h.cuda_built,
                                h.devices,   h.devices_note};
          },
          [&](const caf::error& err) { failure = impl_->system->render(err); });
  if (!out) throw node_error("health request failed: " + failure);
  return *out;
}

void node::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  caf::anon_send_exit(impl_->health, caf::exit_reason::user_shutdown);
  impl_->health = nullptr;
  impl_->system.reset();  // joins every actor and the middleman
}

}  // namespace bastion
