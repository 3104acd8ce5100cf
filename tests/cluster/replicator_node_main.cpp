// One replicator process for the multi-process journal test (replicator_kill_leader_test.sh):
// a replicator on a file_store (or, with --store memory, a memory_store flushed by a thread),
// reachable by its peers only through a published raft_link gateway (wire::frame is the one
// message type that crosses processes), peers found through port files in a shared directory
// and found again when a restarted peer writes a new one. While it leads, it proposes
// records; it prints what it sees, one line per event, for the script to read:
//   PORT <port>            published, peers may connect
//   ROLE <role> <term> <leader>
//   ACK <index> <payload>  a record this node proposed is committed
//   <index> <payload>      to the applied file, one line per committed record
//
// Usage: replicator_node --id N --nodes 3 --dir DIR --run-ms MS [--propose-every-ms MS]
//                        [--store file|memory]   (file: DIR/nodeN.data)
//                        [--applied FILE]        (default DIR/nodeN.applied)
//                        [--bench-records N --record-bytes B --window W]
//                        (bench/journal_replicated_bench)

#include "actors/replicator.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/journal/file_ops.hpp"
#include "runtime/journal/file_store.hpp"
#include "runtime/journal/memory_store.hpp"
#include "runtime/wire/announce.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

using namespace bastion;
using namespace bastion::actors;

namespace {

struct node_config : caf::actor_system_config {
  node_config() {
    wire::announce_wire_types(*this);
    announce_replicator_types(*this);
    load<caf::io::middleman>();
    set("logger.console-verbosity", caf::atom("quiet"));
    set("scheduler.max-threads", 2);
  }
};

struct options {
  std::uint64_t id = 0;
  std::uint64_t nodes = 3;
  std::string dir;
  long run_ms = 10000;
  long propose_every_ms = 50;
  std::string store = "file";
  std::string applied;     // default DIR/nodeN.applied
  long bench_records = 0;  // > 0: once leading, commit this many records and print BENCH
  long record_bytes = 256;
  long window = 32;  // proposals in flight during the bench
};

bool parse(int argc, char** argv, options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string key = argv[i];
    std::string value = argv[i + 1];
    if (key == "--id")
      o.id = std::stoull(value);
    else if (key == "--nodes")
      o.nodes = std::stoull(value);
    else if (key == "--dir")
      o.dir = value;
    else if (key == "--run-ms")
      o.run_ms = std::stol(value);
    else if (key == "--propose-every-ms")
      o.propose_every_ms = std::stol(value);
    else if (key == "--store" && (value == "file" || value == "memory"))
      o.store = value;
    else if (key == "--applied")
      o.applied = value;
    else if (key == "--bench-records")
      o.bench_records = std::stol(value);
    else if (key == "--record-bytes")
      o.record_bytes = std::stol(value);
    else if (key == "--window")
      o.window = std::stol(value);
    else
      return false;
  }
  return o.id != 0 && o.id <= o.nodes && !o.dir.empty() && o.bench_records >= 0 &&
         o.record_bytes > 0 && o.record_bytes <= (1 << 20) && o.window > 0 && o.window <= 4096;
}

std::mutex out_mutex;

void say(const std::string& line) {
  std::lock_guard<std::mutex> guard{out_mutex};
  std::cout << line << std::endl;
}

// Forwards frames from the network to the local replicator; the only actor published.
raft_link::behavior_type gateway(raft_link::pointer self, replicator_actor local) {
  return {[=](wire::frame& f) { self->send(local, std::move(f)); }};
}

commit_subscriber::behavior_type applied_writer(commit_subscriber::pointer,
                                                std::shared_ptr<std::ofstream> out) {
  return {[=](committed_atom, const committed_entry& e) {
    if (e.restored) return;  // the log's entries only
    *out << e.index << " " << std::string(e.payload.begin(), e.payload.end()) << "\n";
    out->flush();
  }};
}

// Takes the line's prefix as an argument: CAF 0.17 trips UBSan on actors spawned without any.
role_observer::behavior_type role_printer(role_observer::pointer, std::string prefix) {
  return {[prefix](role_changed_atom, const replicator_status& s) {
    say(prefix + " " + std::string{to_string(s.role)} + " " + std::to_string(s.term) + " " +
        std::to_string(s.leader_id));
  }};
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  if (!parse(argc, argv, opt)) {
    std::cerr << "usage: replicator_node --id N --nodes 3 --dir DIR --run-ms MS "
                 "[--propose-every-ms MS]\n";
    return 2;
  }
  node_config cfg;
  caf::actor_system sys{cfg};
  system_clock_source clock;
  std::unique_ptr<journal::log_store> store;
  journal::memory_store* memory = nullptr;
  if (opt.store == "file") {
    store = std::make_unique<journal::file_store>(
        opt.dir + "/node" + std::to_string(opt.id) + ".data", journal::file_store_options{},
        std::make_shared<journal::posix_file_ops>(),
        [](const std::string& line) { say("STORE " + line); });
  } else {
    auto m = std::make_unique<journal::memory_store>();
    memory = m.get();
    store = std::move(m);
  }

  // With a memory_store, the "disk" flushes it every millisecond on its own thread.
  std::atomic<bool> stop{false};
  std::thread disk{[&] {
    while (memory != nullptr && !stop) {
      memory->flush();
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
  }};

  auto applied_file = std::make_shared<std::ofstream>(
      opt.applied.empty() ? opt.dir + "/node" + std::to_string(opt.id) + ".applied" : opt.applied);
  replicator_config rc;
  rc.id = opt.id;
  rc.address = "127.0.0.1/node" + std::to_string(opt.id);
  for (std::uint64_t peer = 1; peer <= opt.nodes; ++peer)
    if (peer != opt.id) rc.peers.push_back({peer, "127.0.0.1/node" + std::to_string(peer), {}});
  rc.rng_seed = opt.id * 7919;
  rc.subscribers = {sys.spawn(applied_writer, applied_file)};
  rc.role_observers = {sys.spawn(role_printer, std::string{"ROLE"})};
  auto replicator = spawn_replicator(sys, rc, *store, clock);

  auto gw = sys.spawn(gateway, replicator);
  auto port = sys.middleman().publish(gw, 0, "127.0.0.1");
  if (!port) {
    std::cerr << "publish failed: " << sys.render(port.error()) << "\n";
    return 1;
  }
  {
    std::ofstream pf(opt.dir + "/node" + std::to_string(opt.id) + ".port.tmp");
    pf << *port << "\n";
  }
  std::rename((opt.dir + "/node" + std::to_string(opt.id) + ".port.tmp").c_str(),
              (opt.dir + "/node" + std::to_string(opt.id) + ".port").c_str());
  say("PORT " + std::to_string(*port));

  // Peers are reached through their port files; a peer that restarts writes a new port and
  // is linked again (peer_link_atom), so the replicator's frames reach the new process.
  std::map<std::uint64_t, std::uint16_t> linked_port;
  auto link_peers = [&] {
    for (std::uint64_t peer = 1; peer <= opt.nodes; ++peer) {
      if (peer == opt.id) continue;
      std::ifstream pf(opt.dir + "/node" + std::to_string(peer) + ".port");
      std::uint16_t peer_port = 0;
      if (!(pf >> peer_port) || linked_port[peer] == peer_port) continue;
      auto link = sys.middleman().remote_actor<raft_link>("127.0.0.1", peer_port);
      if (!link) continue;
      caf::anon_send(replicator, peer_link_atom::value, peer, *link);
      linked_port[peer] = peer_port;
      say("LINKED " + std::to_string(peer) + " " + std::to_string(peer_port));
    }
  };
  // At start, wait for every peer (bounded: 20 s).
  for (int attempt = 0; attempt < 200 && linked_port.size() + 1 < opt.nodes; ++attempt) {
    link_peers();
    std::size_t n = 0;
    for (const auto& [peer, p] : linked_port) n += p != 0;
    if (n + 1 == opt.nodes) break;
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  }

  // Propose while leading; a refusal names the leader, which is all we need to know.
  caf::scoped_actor self{sys};
  bool bench_done = opt.bench_records == 0;
  // Commit latency and throughput with `window` proposals in flight, measured at the leader
  // from propose to committed (a majority has the record durably). Responses are taken in
  // proposal order, which is commit order.
  auto run_bench = [&] {
    using steady = std::chrono::steady_clock;
    const std::vector<std::uint8_t> record(static_cast<std::size_t>(opt.record_bytes), 0x5a);
    using handle_t =
        decltype(self->request(replicator, std::chrono::seconds{10}, propose_atom::value, record));
    std::deque<std::pair<handle_t, steady::time_point>> in_flight;
    std::vector<double> latency_ms;
    long sent = 0, failed = 0;
    const auto start = steady::now();
    while (static_cast<long>(latency_ms.size()) + failed < opt.bench_records) {
      while (sent < opt.bench_records && static_cast<long>(in_flight.size()) < opt.window) {
        in_flight.emplace_back(
            self->request(replicator, std::chrono::seconds{10}, propose_atom::value, record),
            steady::now());
        ++sent;
      }
      auto& [handle, t0] = in_flight.front();
      const auto sent_at = t0;
      handle.receive(
          [&](std::uint64_t) {
            latency_ms.push_back(
                std::chrono::duration<double, std::milli>(steady::now() - sent_at).count());
          },
          [&](caf::error&) { ++failed; });
      in_flight.pop_front();
    }
    const double seconds = std::chrono::duration<double>(steady::now() - start).count();
    std::sort(latency_ms.begin(), latency_ms.end());
    auto pct = [&](double p) {
      return latency_ms.empty()
                 ? 0.0
                 : latency_ms[std::min(
                       latency_ms.size() - 1,
                       static_cast<std::size_t>(p * static_cast<double>(latency_ms.size())))];
    };
    const double recs = static_cast<double>(latency_ms.size()) / seconds;
    char line[256];
    std::snprintf(line, sizeof line,
                  "BENCH records=%zu failed=%ld bytes=%ld window=%ld seconds=%.3f "
                  "records_per_s=%.1f mb_per_s=%.3f p50_ms=%.3f p99_ms=%.3f",
                  latency_ms.size(), failed, opt.record_bytes, opt.window, seconds, recs,
                  recs * static_cast<double>(opt.record_bytes) / 1e6, pct(0.50), pct(0.99));
    say(line);
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds{opt.run_ms};
  std::uint64_t next_record = 0;
  auto next_link_check = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < deadline) {
    if (std::chrono::steady_clock::now() >= next_link_check) {
      link_peers();
      next_link_check += std::chrono::milliseconds{300};
    }
    // The pid tells a restarted process's records from its predecessor's.
    const std::string payload = "n" + std::to_string(opt.id) + "." + std::to_string(::getpid()) +
                                "-r" + std::to_string(next_record);
    self->request(replicator, std::chrono::seconds{5}, propose_atom::value,
                  std::vector<std::uint8_t>(payload.begin(), payload.end()))
        .receive(
            [&](std::uint64_t index) {
              ++next_record;
              say("ACK " + std::to_string(index) + " " + payload);
              if (!bench_done) {  // leading now: the bench runs here, once
                bench_done = true;
                run_bench();
              }
            },
            [&](caf::error&) {});
    std::this_thread::sleep_for(std::chrono::milliseconds{opt.propose_every_ms});
  }
  say("DONE");
  self->send_exit(replicator, caf::exit_reason::user_shutdown);
  self->send_exit(gw, caf::exit_reason::user_shutdown);
  self->wait_for(replicator);
  stop = true;
  disk.join();
  return 0;
}
