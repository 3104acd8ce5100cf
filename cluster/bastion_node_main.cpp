// bastion-node: one Bastion node process. Starts the node (with --config: its models, workers,
// scheduler and the HTTP + RPC listeners of the config), prints its health and where it
// listens and, unless --once is given, serves until SIGINT or SIGTERM, then drains and stops.
// A stop that does not finish in --stop-timeout seconds ends the process with exit code 3: a
// worker stuck in a device call that never returns (a hung GPU) cannot be joined, and only the
// end of the process frees its device. The journal is safe either way: what was acknowledged
// is durable, as after a kill.

#include <bastion/node.hpp>

#include "cluster/cuda_device_order.hpp"
#include "kernels/device/nvml_reader.hpp"

#include <boost/program_options.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

namespace po = boost::program_options;

namespace {

std::atomic<bool> stop_requested{false};

extern "C" void on_signal(int) { stop_requested.store(true); }

// NVML's view of the GPUs at start, one line each, whether or not this build runs CUDA: what
// the health actor then publishes every node.device_sample_ms as bastion_gpu_* metrics. The
// number is NVML's index (nvidia-smi's); the PCI address is what ties it to a "device" line
// above, whose cuda:N CUDA_VISIBLE_DEVICES may have renumbered.
void print_nvml_view() {
  namespace dev = bastion::kernels::device;
  const dev::nvml_reader nvml{dev::default_nvml_library()};
  unsigned count = 0;
  if (const auto st = nvml.device_count(count); !st) {
    std::cout << "  gpus      none (" << st.message() << ")\n";
    return;
  }
  if (count == 0) std::cout << "  gpus      none (NVML sees no device)\n";
  for (unsigned i = 0; i < count; ++i) {
    const auto s = nvml.sample(i);
    std::cout << "  gpu       " << i << ' ' << (s.name.empty() ? "(unnamed)" : s.name);
    if (dev::pci_address a; nvml.read_pci_address(i, a)) std::cout << ", PCI " << to_string(a);
    char buf[96];
    if (s.temperature_celsius) {
      std::snprintf(buf, sizeof buf, ", %.0f C", *s.temperature_celsius);
      std::cout << buf;
    }
    if (s.power_watts) {
      std::snprintf(buf, sizeof buf, ", %.0f W", *s.power_watts);
      std::cout << buf;
    }
    if (s.utilization_ratio) {
      std::snprintf(buf, sizeof buf, ", %.0f%% busy", *s.utilization_ratio * 100.0);
      std::cout << buf;
    }
    if (s.memory_used_bytes && s.memory_total_bytes) {
      std::snprintf(buf, sizeof buf, ", %.1f of %.1f GiB used",
                    static_cast<double>(*s.memory_used_bytes) / (1u << 30),
                    static_cast<double>(*s.memory_total_bytes) / (1u << 30));
      std::cout << buf;
    }
    for (const auto& e : s.errors) std::cout << ", no " << e.reading << " (" << e.reason << ')';
    std::cout << '\n';
  }
}

void print_health(const bastion::health_report& h) {
  std::cout << "bastion-node " << h.version << '\n'
            << "  node      " << h.node << '\n'
            << "  site      " << h.site << '\n'
            << "  uptime    " << h.uptime_ms << " ms\n"
            << "  cpu gemm  " << h.cpu_gemm << '\n'
            << "  cuda      " << (h.cuda_built ? "built" : "not built") << '\n';
  if (h.devices.empty()) std::cout << "  devices   none (" << h.devices_note << ")\n";
  for (const auto& d : h.devices) std::cout << "  device    " << d << '\n';
  print_nvml_view();
  std::cout << "  status    healthy" << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  bastion::node_options opts;
  bool once = false;
  unsigned stop_timeout_s = 60;
  po::options_description desc("bastion-node options");
  desc.add_options()("help,h", "print this help")(
      "name", po::value(&opts.name)->default_value(opts.name), "node name, unique in the cluster")(
      "site", po::value(&opts.site)->default_value(opts.site), "prod, dr-local or dr-remote")(
      "threads", po::value(&opts.worker_threads)->default_value(0),
      "actor scheduler threads (0: one per core)")(
      "config", po::value(&opts.config_file),
      "TOML node config: serve its models on its listeners (supersedes --name, --site, --threads)")(
      "once", po::bool_switch(&once), "print health and exit")(
      "stop-timeout", po::value(&stop_timeout_s)->default_value(stop_timeout_s),
      "seconds a stop may take (draining, then joining the workers) before the process exits "
      "with code 3 without it; 0: wait for good");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "bastion-node: " << e.what() << "\n" << desc;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  // Before the node starts: its threads and its first CUDA call come with it.
  if (const auto order = bastion::cluster::align_cuda_device_order(); !order.message.empty())
    std::cerr << "bastion-node: " << order.message << std::endl;
  if (const auto visible =
          bastion::cluster::describe_cuda_visible_devices(std::getenv("CUDA_VISIBLE_DEVICES"));
      !visible.empty())
    std::cerr << "bastion-node: " << visible << std::endl;
  try {
    opts.listen = !opts.config_file.empty();
    auto node = bastion::node::start(opts);
    print_health(node->health());
    if (!opts.config_file.empty()) {
      std::cout << "  models   ";
      for (const auto& m : node->models()) std::cout << ' ' << m;
      std::cout << '\n';
      // One line each, parsed by cluster/demo and the tests: the listeners may be port 0.
      if (node->http_port() != 0) std::cout << "  http      port " << node->http_port() << '\n';
      if (node->rpc_port() != 0) std::cout << "  rpc       port " << node->rpc_port() << '\n';
      if (const auto c = node->cluster(); c.enabled)
        std::cout << "  journal   port " << c.journal_port << '\n';
      std::cout << "  serving" << std::endl;
    }
    if (once) return 0;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    // In a cluster, one line per change of this site's role, for operators and cluster/ scripts:
    //   SITE <phase> epoch <e> term <t> leader <address> <milliseconds since the Unix epoch>
    bastion::cluster_status last;
    while (!stop_requested.load()) {
      const auto c = node->cluster();
      if (c.enabled && (c.phase != last.phase || c.term != last.term ||
                        c.leader_address != last.leader_address)) {
        const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
        std::cout << "SITE " << c.phase << " epoch " << c.epoch << " term " << c.term << " leader "
                  << (c.leader_address.empty() ? "-" : c.leader_address) << ' ' << now_ms
                  << (c.last_failure.empty() ? "" : " (" + c.last_failure + ")") << std::endl;
        last = c;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
    }
    if (stop_timeout_s > 0) {
      std::thread([stop_timeout_s] {
        std::this_thread::sleep_for(std::chrono::seconds{stop_timeout_s});
        std::cerr << "bastion-node: the stop did not finish in " << stop_timeout_s
                  << " s (a worker may be stuck in a device call: see "
                     "bastion_worker_step_stalls_total); exiting without it"
                  << std::endl;
        std::_Exit(3);
      }).detach();
    }
    node->stop();
    std::cout << "bastion-node: stopped" << std::endl;
  } catch (const bastion::start_error& e) {
    std::cerr << "bastion-node: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "bastion-node: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
