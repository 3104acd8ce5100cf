#include "tests/actors/replicator_sim.hpp"

#include "actors/replicator_errors.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <sstream>

namespace bastion::sim {

using namespace bastion::actors;

namespace {

using route_atom = caf::atom_constant<caf::atom("simroute")>;
using deliver_atom = caf::atom_constant<caf::atom("simdeliver")>;
using client_propose_atom = caf::atom_constant<caf::atom("simpropose")>;
using client_transfer_atom = caf::atom_constant<caf::atom("simtrans")>;
using client_add_voter_atom = caf::atom_constant<caf::atom("simaddvote")>;

// The in-memory network: frames from a link proxy are routed through the fault state, then
// delivered (now or after a delay) to whatever replicator currently has the receiver's id.
caf::behavior network_actor(caf::event_based_actor* self, network_faults* faults,
                            std::vector<sim_node>* nodes) {
  return {
      [=](route_atom, std::uint64_t from, std::uint64_t to, wire::frame& f) {
        ++faults->sent;
        const int delay_ms = faults->route(from, to);
        if (delay_ms < 0) {
          ++faults->dropped;
          return;
        }
        if (delay_ms == 0)
          self->send(self, deliver_atom::value, from, to, std::move(f));
        else
          self->delayed_send(self, std::chrono::milliseconds{delay_ms}, deliver_atom::value, from,
                             to, std::move(f));
      },
      [=](deliver_atom, std::uint64_t from, std::uint64_t to, wire::frame& f) {
        // A link cut while the frame was in flight loses it, too.
        auto& target = (*nodes)[to - 1];
        if (!faults->connected(from, to) || !target.alive()) {
          ++faults->dropped;
          return;
        }
        ++faults->delivered;
        self->send(target.handle, std::move(f));
      },
  };
}

raft_link::behavior_type link_proxy(raft_link::pointer, caf::actor network, std::uint64_t from,
                                    std::uint64_t to) {
  return {
      [=](wire::frame& f) { caf::anon_send(network, route_atom::value, from, to, std::move(f)); },
  };
}

commit_subscriber::behavior_type subscriber(commit_subscriber::pointer,
                                            std::vector<committed_entry>* sink) {
  return {
      [=](committed_atom, committed_entry& e) {
        if (!e.restored) sink->push_back(std::move(e));  // the log's entries only
      },
  };
}

caf::behavior client_actor(caf::event_based_actor* self, std::deque<proposal_record>* records,
                           std::vector<std::string>* transfers,
                           std::vector<std::string>* memberships) {
  return {
      [=](client_propose_atom, replicator_actor target, std::uint64_t slot) {
        auto payload = (*records)[slot].payload;
        self->request(target, caf::infinite, propose_atom::value, std::move(payload))
            .then(
                [=](std::uint64_t index) {
                  auto& r = (*records)[slot];
                  r.outcome = proposal_record::acked;
                  r.index = index;
                },
                [=](caf::error& err) {
                  auto& r = (*records)[slot];
                  r.outcome = proposal_record::failed;
                  r.error = self->system().render(err);
                });
      },
      [=](client_transfer_atom, replicator_actor from, std::uint64_t target) {
        self->request(from, caf::infinite, transfer_atom::value, target)
            .then(
                [=](std::uint64_t leader) { transfers->push_back("ok " + std::to_string(leader)); },
                [=](caf::error& err) { transfers->push_back(self->system().render(err)); });
      },
      [=](client_add_voter_atom, replicator_actor leader, std::uint64_t id) {
        self->request(leader, caf::infinite, add_voter_atom::value, id)
            .then(
                [=](std::uint64_t voters) {
                  memberships->push_back("voters " + std::to_string(voters));
                },
                [=](caf::error& err) { memberships->push_back(self->system().render(err)); });
      },
  };
}

std::string bytes_to_string(const std::vector<std::uint8_t>& b) { return {b.begin(), b.end()}; }

void put_u64(std::vector<std::uint8_t>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

bool get_u64(const std::vector<std::uint8_t>& in, std::size_t& pos, std::uint64_t& v) {
  if (in.size() - pos < 8) return false;
  v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | in[pos + static_cast<std::size_t>(i)];
  pos += 8;
  return true;
}

}  // namespace

void recording_state::apply(std::uint64_t index, const std::vector<std::uint8_t>& payload) {
  entries_.push_back({index, payload});
  summary_.apply(index, payload);
}

std::vector<std::vector<std::uint8_t>> recording_state::covered_records() const {
  return summary_.covered_records();
}

std::vector<std::uint8_t> recording_state::serialize() const {
  std::vector<std::uint8_t> out;
  put_u64(out, entries_.size());
  for (const auto& e : entries_) {
    put_u64(out, e.index);
    put_u64(out, e.payload.size());
    out.insert(out.end(), e.payload.begin(), e.payload.end());
  }
  return out;
}

caf::error recording_state::restore(const std::vector<std::uint8_t>& bytes) {
  auto bad = [](const char* why) {
    return make_error(replicator_errc::bad_snapshot, std::string{"recording_state: "} + why);
  };
  std::size_t pos = 0;
  std::uint64_t n = 0;
  if (!get_u64(bytes, pos, n) || n > bytes.size()) return bad("bad entry count");
  std::vector<committed_entry> fresh;
  for (std::uint64_t i = 0; i < n; ++i) {
    committed_entry e;
    std::uint64_t len = 0;
    if (!get_u64(bytes, pos, e.index) || !get_u64(bytes, pos, len) || bytes.size() - pos < len)
      return bad("truncated entry");
    e.payload.assign(bytes.begin() + static_cast<std::ptrdiff_t>(pos),
                     bytes.begin() + static_cast<std::ptrdiff_t>(pos + len));
    pos += len;
    fresh.push_back(std::move(e));
  }
  if (pos != bytes.size()) return bad("trailing bytes");
  entries_ = std::move(fresh);
  summary_ = journal_summary{};  // what production's state would remember of them
  for (const auto& e : entries_) summary_.apply(e.index, e.payload);
  ++restores;
  return caf::none;
}

int network_faults::route(std::uint64_t from, std::uint64_t to) {
  if (!connected(from, to)) return -1;
  if (drop_permille > 0 && rng_() % 1000 < drop_permille) return -1;
  if (delay_max_ms == 0) return 0;
  const unsigned span = delay_max_ms >= delay_min_ms ? delay_max_ms - delay_min_ms + 1 : 1;
  return static_cast<int>(delay_min_ms + rng_() % span);
}

cluster::cluster(caf::actor_system& sys, caf::scheduler::test_coordinator& sched,
                 cluster_options opt)
    : sys_(sys),
      sched_(sched),
      opt_(opt),
      clock_(sched.clock()),
      faults_(std::make_unique<network_faults>(opt.seed * 7919 + 1)),
      rng_(opt.seed) {
  disk_flush_permille = opt.disk_flush_permille;
  nodes_.resize(opt_.size);
  network_ = sys_.spawn(network_actor, faults_.get(), &nodes_);
  client_ = sys_.spawn(client_actor, &proposals_, &transfer_results_, &membership_results_);
  // Spawned with an argument: CAF 0.17 dereferences a null argument tuple for actors spawned
  // without any (UBSan reports it), so the cluster is passed in rather than captured.
  observer_ = sys_.spawn(
      [](role_observer::pointer, cluster* c) -> role_observer::behavior_type {
        return {[c](role_changed_atom, replicator_status& s) { c->on_role(s); }};
      },
      this);
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    auto& n = nodes_[i];
    n.id = i + 1;
    n.address = "replica-" + std::to_string(n.id);
    n.store = std::make_unique<journal::memory_store>();
    n.faults = std::make_shared<link_faults>();
    for (std::size_t j = 0; j < nodes_.size(); ++j) {
      auto link =
          j == i ? raft_link{} : sys_.spawn(link_proxy, network_, n.id, std::uint64_t{j + 1});
      if (link) helpers_.push_back(caf::actor_cast<caf::actor>(link));
      n.links.push_back(link);
    }
  }
  for (auto& n : nodes_) spawn_node(n);
  sched_.run();
}

cluster::~cluster() {
  for (auto& n : nodes_)
    if (n.handle) caf::anon_send_exit(n.handle, caf::exit_reason::kill);
  for (auto& h : helpers_) caf::anon_send_exit(h, caf::exit_reason::kill);
  caf::anon_send_exit(network_, caf::exit_reason::kill);
  caf::anon_send_exit(client_, caf::exit_reason::kill);
  caf::anon_send_exit(observer_, caf::exit_reason::kill);
  sched_.run();
}

void cluster::spawn_node(sim_node& n) {
  n.applied.emplace_back();
  n.states.push_back(std::make_shared<recording_state>());
  auto sub = sys_.spawn(subscriber, &n.applied.back());
  helpers_.push_back(caf::actor_cast<caf::actor>(sub));
  replicator_config cfg;
  cfg.id = n.id;
  cfg.address = n.address;
  for (auto& other : nodes_)
    if (other.id != n.id) cfg.peers.push_back({other.id, other.address, n.links[other.id - 1]});
  cfg.election_timeout_ms = opt_.election_timeout_ms;
  cfg.heartbeat_timeout_ms = opt_.heartbeat_timeout_ms;
  cfg.rng_seed = opt_.seed * 1000003 + n.id * 101 + n.applied.size();
  cfg.subscribers = {sub};
  cfg.role_observers = {observer_};
  cfg.state = n.states.back();
  cfg.snapshot_threshold = opt_.snapshot_threshold;
  cfg.snapshot_trailing = opt_.snapshot_trailing;
  if (opt_.append_frame_bytes_max != 0) {
    cfg.append_frame_bytes_max = opt_.append_frame_bytes_max;
    cfg.record_bytes_max = std::min(cfg.record_bytes_max, opt_.append_frame_bytes_max);
  }
  cfg.metrics = opt_.metrics;
  cfg.faults = n.faults;
  cfg.bootstrap = !n.joining;
  n.handle = spawn_replicator(sys_, std::move(cfg), *n.store, clock_);
  n.role = replica_role::follower;
}

std::int64_t cluster::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.monotonic()).count();
}

void cluster::step() {
  sched_.run();
  for (auto& n : nodes_)
    if (rng_() % 1000 < disk_flush_permille && n.store->flush() > 0) sched_.run();
  sched_.clock().advance_time(std::chrono::milliseconds{opt_.step_ms});
  sched_.run();
}

void cluster::advance(std::int64_t ms) {
  for (std::int64_t t = 0; t < ms; t += opt_.step_ms) step();
}

void cluster::crash(std::uint64_t id) {
  auto& n = node(id);
  if (!n.alive()) return;
  n.store->crash();
  caf::anon_send_exit(n.handle, caf::exit_reason::kill);
  n.handle = nullptr;
  n.role = replica_role::unavailable;
  sched_.run();
}

void cluster::rejoin_empty(std::uint64_t id) {
  auto& n = node(id);
  if (n.alive()) return;
  n.store = std::make_unique<journal::memory_store>();
  n.joining = true;
  spawn_node(n);
  sched_.run();
}

void cluster::add_voter(std::uint64_t leader, std::uint64_t id) {
  auto& n = node(leader);
  if (!n.alive()) {
    membership_results_.push_back("node down");
    return;
  }
  caf::anon_send(client_, client_add_voter_atom::value, n.handle, id);
}

void cluster::restart(std::uint64_t id) {
  auto& n = node(id);
  if (n.alive()) return;
  spawn_node(n);
  sched_.run();
}

std::size_t cluster::propose(std::uint64_t id, std::vector<std::uint8_t> payload) {
  proposal_record r;
  r.node = id;
  r.payload = std::move(payload);
  const auto slot = proposals_.size();
  auto& n = node(id);
  if (!n.alive()) {
    r.outcome = proposal_record::failed;
    r.error = "node down";
    proposals_.push_back(std::move(r));
    return slot;
  }
  proposals_.push_back(std::move(r));
  caf::anon_send(client_, client_propose_atom::value, n.handle, std::uint64_t{slot});
  return slot;
}

std::size_t cluster::propose_to_leader(std::vector<std::uint8_t> payload) {
  const auto id = leader();
  return propose(id == 0 ? 1 : id, std::move(payload));
}

void cluster::transfer(std::uint64_t from, std::uint64_t target) {
  auto& n = node(from);
  if (!n.alive()) {
    transfer_results_.push_back("node down");
    return;
  }
  caf::anon_send(client_, client_transfer_atom::value, n.handle, target);
}

std::vector<std::uint64_t> cluster::ids() const {
  std::vector<std::uint64_t> out;
  for (const auto& n : nodes_) out.push_back(n.id);
  return out;
}

std::uint64_t cluster::leader() const {
  std::uint64_t best = 0;
  std::uint64_t best_term = 0;
  for (const auto& n : nodes_)
    if (n.alive() && n.role == replica_role::leader && n.term >= best_term) {
      best = n.id;
      best_term = n.term;
    }
  return best;
}

void cluster::on_role(const replicator_status& s) {
  role_log_.push_back({now_ms(), s.id, s.role, s.term, s.leader_id});
  auto& n = node(s.id);
  if (n.alive()) {
    n.role = s.role;
    n.term = s.term;
  }
  if (s.role != replica_role::leader) return;
  // Election safety: at most one leader per term, across every incarnation.
  for (const auto& e : role_log_)
    if (e.role == replica_role::leader && e.term == s.term && e.id != s.id) {
      std::ostringstream out;
      out << "two leaders in term " << s.term << ": replicas " << e.id << " and " << s.id;
      violations_.push_back(out.str());
    }
}

std::vector<std::string> cluster::check_invariants() const {
  std::vector<std::string> out = violations_;
  // Log matching as seen by the state machines: one payload per index, across every replica
  // and every incarnation, applied in increasing index order.
  // The states count too: after a snapshot restore they hold what the subscriber never saw.
  std::map<std::uint64_t, std::vector<std::uint8_t>> committed;
  for (const auto& n : nodes_)
    for (std::size_t inc = 0; inc < n.applied.size() + n.states.size(); ++inc) {
      const bool is_state = inc >= n.applied.size();
      const auto& seen = is_state ? n.states[inc - n.applied.size()]->entries() : n.applied[inc];
      std::uint64_t prev = 0;
      for (const auto& e : seen) {
        if (e.index <= prev)
          out.push_back("replica " + std::to_string(n.id) +
                        (is_state ? " state " : " incarnation ") + std::to_string(inc) +
                        " applied index " + std::to_string(e.index) + " after " +
                        std::to_string(prev));
        prev = e.index;
        auto [it, fresh] = committed.emplace(e.index, e.payload);
        if (!fresh && it->second != e.payload)
          out.push_back("index " + std::to_string(e.index) + " applied as '" +
                        bytes_to_string(it->second) + "' and as '" + bytes_to_string(e.payload) +
                        "'");
      }
    }
  // Durability: a record acknowledged to its proposer is committed at the index it was told.
  for (const auto& p : proposals_) {
    if (p.outcome != proposal_record::acked) continue;
    auto it = committed.find(p.index);
    if (it == committed.end() || it->second != p.payload)
      out.push_back("record '" + bytes_to_string(p.payload) + "' acknowledged at index " +
                    std::to_string(p.index) + " is not what any replica applied there");
  }
  return out;
}

replicator_status cluster::status(std::uint64_t id) {
  replicator_status out;
  out.id = id;
  auto& n = node(id);
  if (!n.alive()) return out;
  caf::scoped_actor self{sys_};
  auto req = self->request(n.handle, caf::infinite, status_atom::value);
  sched_.run();
  req.receive([&](replicator_status& st) { out = std::move(st); }, [&](caf::error&) {});
  return out;
}

std::string cluster::describe_status(const sim_node& n) {
  if (!n.alive()) return ", down";
  caf::scoped_actor self{sys_};
  auto req = self->request(n.handle, caf::infinite, status_atom::value);
  sched_.run();
  std::string out;
  req.receive(
      [&](replicator_status& st) {
        out = ", raft commit " + std::to_string(st.commit_index) + " applied " +
              std::to_string(st.last_applied) + " last " + std::to_string(st.last_index) +
              " leader " + std::to_string(st.leader_id) + " dropped frames " +
              std::to_string(st.frames_dropped) + " storage errors " +
              std::to_string(st.storage_errors) + " " + st.last_error;
      },
      [&](caf::error& err) { out = ", status failed: " + sys_.render(err); });
  return out;
}

std::string cluster::heal_and_settle(std::int64_t limit_ms) {
  faults_->heal();
  faults_->drop_permille = 0;
  faults_->delay_min_ms = 0;
  faults_->delay_max_ms = 0;
  disk_flush_permille = 1000;
  for (auto& n : nodes_)
    if (!n.alive()) restart(n.id);
  const auto deadline = now_ms() + limit_ms;
  // A final record through the leader commits everything earlier terms left behind.
  std::size_t slot = 0;
  bool acked = false;
  while (!acked && now_ms() < deadline) {
    if (!advance_until([&] { return leader() != 0; }, deadline - now_ms())) {
      std::string why = "no leader within " + std::to_string(limit_ms) + " ms of healing:";
      for (const auto& n : nodes_)
        why += " [replica " + std::to_string(n.id) + " " + to_string(n.role) + " term " +
               std::to_string(n.term) + ", store last index " +
               std::to_string(n.store->last_index()) + describe_status(n) + "]";
      return why;
    }
    slot = propose_to_leader({'f', 'i', 'n', 'a', 'l'});
    advance_until([&] { return proposal(slot).outcome != proposal_record::pending; },
                  deadline - now_ms());
    acked = proposal(slot).outcome == proposal_record::acked;
  }
  if (!acked) return "the final record did not commit within " + std::to_string(limit_ms) + " ms";
  const auto final_index = proposal(slot).index;
  auto caught_up = [&] {
    for (const auto& n : nodes_)
      if (n.states.back()->last_index() < final_index) return false;
    return true;
  };
  if (!advance_until(caught_up, deadline - now_ms())) {
    std::string why = "not every replica applied index " + std::to_string(final_index) +
                      " within " + std::to_string(limit_ms) + " ms:";
    for (const auto& n : nodes_)
      why += " [replica " + std::to_string(n.id) + " " + to_string(n.role) + " term " +
             std::to_string(n.term) + " applied up to " +
             std::to_string(n.states.back()->last_index()) + ", store last index " +
             std::to_string(n.store->last_index()) + describe_status(n) + "]";
    return why;
  }
  // Caught-up replicas hold the same records in the same order (in their state machines:
  // a replica restored from a snapshot did not apply the covered records itself).
  const auto& reference = nodes_.front().states.back()->entries();
  for (const auto& n : nodes_) {
    const auto& mine = n.states.back()->entries();
    bool same = mine.size() == reference.size();
    for (std::size_t i = 0; same && i < mine.size(); ++i)
      same = mine[i].index == reference[i].index && mine[i].payload == reference[i].payload;
    if (!same)
      return "replica " + std::to_string(n.id) + " applied a different sequence than replica 1";
  }
  return {};
}

}  // namespace bastion::sim

namespace bastion::sim {

fault_schedule make_fault_schedule(std::uint64_t seed, std::size_t nodes) {
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ULL + 17);
  auto pick = [&](std::uint64_t n) { return rng() % n; };
  auto node = [&] { return pick(nodes) + 1; };
  fault_schedule s;
  s.seed = seed;
  s.duration_ms = 3000 + static_cast<std::int64_t>(pick(5000));
  // Compaction in two schedules of three, with thresholds small enough that a replica cut off
  // for a few hundred ms falls behind the leader's log and needs an InstallSnapshot.
  std::mt19937_64 compaction_rng(seed * 0xbf58476d1ce4e5b9ULL + 5);
  if (compaction_rng() % 3 != 0) {
    s.snapshot_threshold = static_cast<unsigned>(4 + compaction_rng() % 29);
    s.snapshot_trailing = static_cast<unsigned>(1 + compaction_rng() % s.snapshot_threshold);
  }
  // Disk speed from the start: from a write every step to one in fifty.
  s.events.push_back({0, fault_event::disk, 0, 0, static_cast<unsigned>(20 + pick(981))});
  // Client load throughout: a few records every few hundred ms.
  for (std::int64_t t = 200; t < s.duration_ms; t += 150 + static_cast<std::int64_t>(pick(400)))
    s.events.push_back({t, fault_event::propose, 0, 0, static_cast<unsigned>(1 + pick(3))});
  // Faults.
  const auto n_faults = 3 + pick(8);
  for (std::uint64_t i = 0; i < n_faults; ++i) {
    fault_event e;
    e.at_ms = static_cast<std::int64_t>(pick(static_cast<std::uint64_t>(s.duration_ms)));
    e.a = node();
    do {
      e.b = node();
    } while (e.b == e.a && nodes > 1);
    switch (pick(11)) {
      case 0:
      case 1:
        e.kind = fault_event::crash;
        // Half the crashes hit whoever leads at the time (a = 0), the node holding the most
        // acknowledged-but-maybe-unflushed writes. One in three also takes node b down at the
        // same instant (one power feed for two racks): the only way a majority loses writes it
        // had not flushed.
        if (pick(2) == 0) e.a = 0;
        e.value = pick(3) == 0 ? 2 : 1;
        // Most crashed nodes come back within the schedule; the rest at the final heal.
        if (pick(4) != 0)
          s.events.push_back({e.at_ms + 200 + static_cast<std::int64_t>(pick(2500)),
                              fault_event::restart, 0, 0, 0});
        break;
      case 2:
        e.kind = fault_event::isolate;
        break;
      case 3:
        e.kind = fault_event::cut;
        break;
      case 4:
        e.kind = fault_event::cut_one_way;
        break;
      case 5:
        e.kind = fault_event::heal;
        break;
      case 6:
        e.kind = fault_event::drop;
        e.value = static_cast<unsigned>(pick(400));
        break;
      case 7:
        e.kind = fault_event::delay;
        e.value = static_cast<unsigned>(pick(120));
        break;
      case 8:
        e.kind = fault_event::disk;
        // Slow disks are the interesting ones: writes wait many steps to become durable.
        e.value = static_cast<unsigned>(pick(2) == 0 ? 20 + pick(200) : 200 + pick(801));
        break;
      case 9:
        e.kind = fault_event::transfer;
        break;
      default:
        e.kind = fault_event::propose;
        e.value = static_cast<unsigned>(5 + pick(20));  // a burst
        break;
    }
    s.events.push_back(e);
  }
  std::stable_sort(s.events.begin(), s.events.end(),
                   [](const fault_event& x, const fault_event& y) { return x.at_ms < y.at_ms; });
  return s;
}

std::string describe(const fault_schedule& s) {
  static const char* names[] = {"crash", "restart", "isolate", "cut",     "cut_one_way", "heal",
                                "drop",  "delay",   "disk",    "propose", "transfer"};
  std::ostringstream out;
  out << "schedule seed " << s.seed << ", " << s.duration_ms << " ms, ";
  if (s.snapshot_threshold == 0)
    out << "no compaction:";
  else
    out << "snapshot every " << s.snapshot_threshold << " entries keeping " << s.snapshot_trailing
        << ":";
  for (const auto& e : s.events) {
    if (e.kind == fault_event::propose && e.value <= 3) continue;  // background load
    out << "\n  @" << e.at_ms << " " << names[e.kind];
    switch (e.kind) {
      case fault_event::crash:
        out << " " << (e.a == 0 ? std::string{"leader"} : std::to_string(e.a));
        if (e.value == 2) out << " and " << e.b;
        break;
      case fault_event::restart:
        out << " " << (e.a == 0 ? std::string{"all crashed"} : std::to_string(e.a));
        break;
      case fault_event::isolate:
      case fault_event::transfer:
        out << " " << e.a;
        break;
      case fault_event::cut:
      case fault_event::cut_one_way:
        out << " " << e.a << (e.kind == fault_event::cut ? " <-> " : " -> ") << e.b;
        break;
      case fault_event::drop:
      case fault_event::delay:
      case fault_event::disk:
      case fault_event::propose:
        out << " " << e.value;
        break;
      case fault_event::heal:
        break;
    }
  }
  return out.str();
}

cluster_options options_for(const fault_schedule& s) {
  cluster_options opt;
  opt.seed = s.seed;
  opt.snapshot_threshold = s.snapshot_threshold;
  opt.snapshot_trailing = s.snapshot_trailing;
  return opt;
}

std::vector<std::string> run_fault_schedule(const fault_schedule& s, cluster& c) {
  const auto start = c.now_ms();
  std::uint64_t record = 0;
  auto payload = [&] {
    auto text = "s" + std::to_string(s.seed) + "-r" + std::to_string(record++);
    return std::vector<std::uint8_t>(text.begin(), text.end());
  };
  for (const auto& e : s.events) {
    const auto wait = start + e.at_ms - c.now_ms();
    if (wait > 0) c.advance(wait);
    switch (e.kind) {
      case fault_event::crash: {
        const auto victim = e.a != 0 ? e.a : (c.leader() != 0 ? c.leader() : 1);
        c.crash(victim);
        if (e.value == 2) c.crash(e.b != victim ? e.b : victim % c.ids().size() + 1);
        break;
      }
      case fault_event::restart:
        if (e.a != 0) {
          c.restart(e.a);
        } else {
          for (auto id : c.ids()) c.restart(id);
        }
        break;
      case fault_event::isolate:
        c.net().isolate(e.a, c.ids());
        break;
      case fault_event::cut:
        c.net().cut_both(e.a, e.b);
        break;
      case fault_event::cut_one_way:
        c.net().cut(e.a, e.b);
        break;
      case fault_event::heal:
        c.net().heal();
        break;
      case fault_event::drop:
        c.net().drop_permille = e.value;
        break;
      case fault_event::delay:
        c.net().delay_min_ms = 0;
        c.net().delay_max_ms = e.value;
        break;
      case fault_event::disk:
        c.disk_flush_permille = e.value;
        break;
      case fault_event::propose:
        for (unsigned i = 0; i < e.value; ++i) c.propose_to_leader(payload());
        break;
      case fault_event::transfer:
        if (auto leader = c.leader(); leader != 0 && leader != e.a) c.transfer(leader, e.a);
        break;
    }
  }
  const auto rest = start + s.duration_ms - c.now_ms();
  if (rest > 0) c.advance(rest);
  auto violations = c.check_invariants();
  if (auto why = c.heal_and_settle(60000); !why.empty()) violations.push_back(why);
  for (auto& v : c.check_invariants())
    if (std::find(violations.begin(), violations.end(), v) == violations.end())
      violations.push_back(std::move(v));
  return violations;
}

}  // namespace bastion::sim
