#include "actors/replicator.hpp"

#include "actors/replicator_codec.hpp"
#include "actors/replicator_errors.hpp"
#include "actors/replicator_raft_io.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

extern "C" {
#include <raft.h>
}

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <random>

namespace bastion::actors {

const char* to_string(replica_role role) noexcept {
  switch (role) {
    case replica_role::unavailable:
      return "unavailable";
    case replica_role::follower:
      return "follower";
    case replica_role::candidate:
      return "candidate";
    case replica_role::leader:
      return "leader";
  }
  return "unknown";
}

namespace {

// Messages the actor sends itself; not part of the public interface.
using io_done_atom = caf::atom_constant<caf::atom("iodone")>;
using tick_atom = caf::atom_constant<caf::atom("rafttick")>;

using replicator_impl =
    replicator_actor::extend<caf::reacts_to<io_done_atom, std::uint64_t, std::int32_t>,
                             caf::reacts_to<tick_atom>>;

struct replicator_state;

// The replicator's series in a metrics::registry (DESIGN.md §7), labelled replica="<id>".
// Gauges are refreshed after every entry into libraft; counters count as things happen.
struct replicator_metrics {
  metrics::gauge* role;
  metrics::gauge* term;
  metrics::gauge* leader_id;
  metrics::gauge* commit_index;
  metrics::gauge* last_applied;
  metrics::gauge* last_index;
  metrics::gauge* snapshot_index;
  metrics::counter* proposals;
  metrics::counter* proposed_bytes;
  metrics::counter* committed;
  metrics::counter* proposals_failed;
  metrics::counter* snapshots_taken;
  metrics::counter* snapshots_installed;
  metrics::counter* frames_received;
  metrics::counter* append_frames_split;
  metrics::counter* storage_errors;
  metrics::counter* fault_outgoing_dropped;
  metrics::counter* fault_delayed;
  metrics::registry* reg;
  metrics::labels labels;

  replicator_metrics(metrics::registry& r, std::uint64_t id)
      : reg(&r), labels{{"replica", std::to_string(id)}} {
    role = &r.get_gauge("bastion_replicator_role",
                        "Raft role: 0 unavailable, 1 follower, 2 candidate, 3 leader", labels);
    term = &r.get_gauge("bastion_replicator_term", "Current Raft term", labels);
    leader_id = &r.get_gauge("bastion_replicator_leader_id", "Known leader (0: none)", labels);
    commit_index = &r.get_gauge("bastion_replicator_commit_index", "Raft commit index", labels);
    last_applied =
        &r.get_gauge("bastion_replicator_last_applied", "Last index applied here", labels);
    last_index = &r.get_gauge("bastion_replicator_last_index", "Last index in the log", labels);
    snapshot_index = &r.get_gauge("bastion_replicator_snapshot_index",
                                  "Last index covered by the latest snapshot", labels);
    proposals = &r.get_counter("bastion_replicator_proposals_total",
                               "Records handed to libraft by propose()", labels);
    proposed_bytes = &r.get_counter("bastion_replicator_proposed_bytes_total",
                                    "Bytes of the records handed to libraft", labels);
    committed = &r.get_counter("bastion_replicator_proposals_committed_total",
                               "Proposals acknowledged as committed", labels);
    proposals_failed = &r.get_counter("bastion_replicator_proposals_failed_total",
                                      "Proposals refused or failed (typed error returned)", labels);
    snapshots_taken =
        &r.get_counter("bastion_replicator_snapshots_taken_total",
                       "Snapshots of the journal state taken to compact the log", labels);
    snapshots_installed = &r.get_counter("bastion_replicator_snapshots_installed_total",
                                         "Snapshots received from a leader and restored", labels);
    frames_received = &r.get_counter("bastion_replicator_frames_received_total",
                                     "Raft frames received from peers", labels);
    append_frames_split =
        &r.get_counter("bastion_replicator_append_frames_split_total",
                       "AppendEntries cut to append_frame_bytes_max before sending", labels);
    storage_errors = &r.get_counter("bastion_replicator_storage_errors_total",
                                    "Storage or transport failures libraft reported", labels);
    fault_outgoing_dropped =
        &r.get_counter("bastion_replicator_frames_fault_outgoing_dropped_total",
                       "Outgoing Raft frames lost to an injected link fault (cut or drop)", labels);
    fault_delayed =
        &r.get_counter("bastion_replicator_frames_fault_delayed_total",
                       "Outgoing Raft frames held back by an injected link delay", labels);
  }

  metrics::counter& dropped(const char* reason) {
    auto l = labels;
    l.emplace_back("reason", reason);
    return reg->get_counter("bastion_replicator_frames_dropped_total",
                            "Raft frames dropped, by reason", l);
  }

  metrics::labels peer_labels(std::uint64_t peer) const {
    auto l = labels;
    l.emplace_back("peer", std::to_string(peer));
    return l;
  }
  metrics::gauge& peer_lag(std::uint64_t peer) {
    return reg->get_gauge("bastion_replicator_peer_lag_seconds",
                          "While leading: age of the oldest entry the peer has not acknowledged",
                          peer_labels(peer));
  }
  metrics::gauge& peer_silence(std::uint64_t peer) {
    return reg->get_gauge("bastion_replicator_peer_silence_seconds",
                          "While leading: time since a Raft frame from the peer arrived",
                          peer_labels(peer));
  }
  metrics::labels alert_labels(const alert_change& c) const {
    auto l = peer_labels(c.peer);
    l.emplace_back("alert", c.alert);
    return l;
  }
  // Prometheus-style alert state in the node itself: 1 while firing, and a count of firings,
  // so a scrape between two evaluations still sees that an alert fired.
  void publish(const alert_change& c) {
    reg->get_gauge("bastion_alert_firing", "1 while the named alert fires on this node",
                   alert_labels(c))
        .set(c.firing ? 1 : 0);
    if (c.firing)
      reg->get_counter("bastion_alerts_fired_total", "Times the named alert started firing",
                       alert_labels(c))
          .inc();
  }
};

using replicator_self = caf::stateful_actor<replicator_state, replicator_impl::base>;

// A proposal libraft is working on; libraft holds `req` until its callback runs.
struct proposal {
  struct raft_apply req {};
  caf::typed_response_promise<std::uint64_t> promise;
  replicator_state* owner = nullptr;
};

// One membership change at a time (libraft's rule): add as a spare, then promote to voter.
struct membership_request {
  struct raft_change req {};
  caf::typed_response_promise<std::uint64_t> promise;
  replicator_state* owner = nullptr;
  std::uint64_t id = 0;
  bool promoting = false;  // the add committed; the promotion to voter is running
};

struct transfer_request {
  struct raft_transfer req {};
  caf::typed_response_promise<std::uint64_t> promise;
  replicator_state* owner = nullptr;
  std::uint64_t target = 0;
};

// One libraft server; never moves (libraft keeps pointers into it).
struct raft_engine {
  struct raft raft {};
  raft_fsm fsm{};
  std::unique_ptr<caf_raft_io> io;
  bool initialised = false;  // raft_init succeeded: raft_close is owed
  bool started = false;
  bool closed = false;
};

struct replicator_state {
  static inline const char* name = "bastion.replicator";

  replicator_self* self = nullptr;
  replicator_config cfg;
  journal::log_store* store = nullptr;
  const clock_source* clock = nullptr;
  std::map<std::uint64_t, replicator_peer> peers;
  std::vector<commit_subscriber> subscribers;
  std::vector<role_observer> observers;
  std::map<struct raft_apply*, std::unique_ptr<proposal>> proposals;
  std::unique_ptr<transfer_request> transfer;
  std::unique_ptr<membership_request> membership;
  std::shared_ptr<journal_state> state;         // the state machine snapshots capture
  std::unique_ptr<replicator_metrics> metrics;  // null without a registry
  replicator_status counts;      // the counters of status(); the rest is filled in on demand
  std::uint64_t split_seen = 0;  // append_frames_split already published
  std::string last_error;
  std::uint64_t last_delivered = 0;  // index of the last entry given to subscribers
  // The fault switch's state here: its own RNG (seeded from cfg.rng_seed, so a test replays
  // its drops) and the per-link delivery order of delayed frames.
  std::mt19937_64 fault_rng;
  link_delay_order delay_order;
  // The leader's lag and silence alerts on its peers (built in start() from cfg.watch).
  std::unique_ptr<peer_watch> watch;
  // What observers were last told.
  int seen_role = -1;
  std::uint64_t seen_term = 0;
  std::uint64_t seen_leader = 0;
  std::unique_ptr<raft_engine> engine;

  ~replicator_state() { close(); }

  bool running() const { return engine && engine->started && !engine->closed; }
  struct raft* raft() {
    return &engine->raft;
  }

  // --- Start and stop --------------------------------------------------------------------

  caf::error check_config() const {
    // Room for the envelope, the message header and per-entry framing beside the payloads.
    constexpr std::size_t frame_overhead_bytes = 64 * 1024;
    if (cfg.record_bytes_max > cfg.append_frame_bytes_max)
      return make_error(replicator_errc::raft_failed,
                        "record_bytes_max " + std::to_string(cfg.record_bytes_max) +
                            " exceeds append_frame_bytes_max " +
                            std::to_string(cfg.append_frame_bytes_max) +
                            ": a record would not fit in an AppendEntries frame");
    if (cfg.append_frame_bytes_max + frame_overhead_bytes > cfg.frame_limits.payload_bytes_max)
      return make_error(replicator_errc::raft_failed,
                        "append_frame_bytes_max " + std::to_string(cfg.append_frame_bytes_max) +
                            " plus " + std::to_string(frame_overhead_bytes) +
                            " bytes of framing exceeds frame_limits.payload_bytes_max " +
                            std::to_string(cfg.frame_limits.payload_bytes_max) +
                            ": peers would drop our AppendEntries frames");
    if (cfg.snapshot_threshold != 0 && cfg.snapshot_trailing == 0)
      return make_error(replicator_errc::raft_failed,
                        "snapshot_trailing 0 with snapshots on: libraft's raft_io reads "
                        "trailing 0 as an installed snapshot");
    return caf::none;
  }

  caf::error start() {
    if (auto err = check_config()) return err;
    state = cfg.state ? cfg.state : std::make_shared<journal_summary>();
    if (cfg.metrics != nullptr)
      metrics = std::make_unique<replicator_metrics>(*cfg.metrics, cfg.id);
    watch = std::make_unique<peer_watch>(cfg.watch);
    auto recovered = store->load();
    if (!recovered)
      return make_error(replicator_errc::storage_failed,
                        "loading the journal failed: " + self->system().render(recovered.error()));
    engine = std::make_unique<raft_engine>();
    caf::weak_actor_ptr weak{self->ctrl()};
    caf_raft_io::hooks hooks;
    fault_rng.seed(cfg.rng_seed ^ 0x6c696e6b5f666c74ULL);  // a stream apart from libraft's
    hooks.send_frame = [this](raft_id to, wire::frame f) {
      auto it = peers.find(to);
      if (it == peers.end() || !it->second.link) return false;
      send_to_peer(to, it->second.link, std::move(f));
      return true;
    };
    hooks.post_completion = [weak](std::uint64_t token, int status) {
      if (auto strong = weak.lock())
        caf::anon_send(caf::actor_cast<replicator_impl>(strong), io_done_atom::value, token,
                       static_cast<std::int32_t>(status));
    };
    hooks.schedule_tick = [this](unsigned ms) {
      self->delayed_send(self, std::chrono::milliseconds{ms}, tick_atom::value);
    };
    hooks.report_error = [this](std::string what) {
      ++counts.storage_errors;
      if (metrics) metrics->storage_errors->inc();
      last_error = std::move(what);
    };
    engine->io = std::make_unique<caf_raft_io>(*store, *clock, cfg.rng_seed, std::move(*recovered),
                                               std::move(hooks));
    engine->io->set_append_frame_bytes_max(cfg.append_frame_bytes_max);
    auto& fsm = engine->fsm;
    fsm.version = 1;
    fsm.data = this;
    fsm.apply = fsm_apply;
    fsm.snapshot = fsm_snapshot;
    fsm.restore = fsm_restore;
    auto* r = raft();
    if (int rv = raft_init(r, engine->io->io(), &fsm, cfg.id, cfg.address.c_str()); rv != 0)
      return raft_error("raft_init", rv);
    engine->initialised = true;
    r->data = this;
    raft_set_election_timeout(r, cfg.election_timeout_ms);
    raft_set_heartbeat_timeout(r, cfg.heartbeat_timeout_ms);
    raft_set_pre_vote(r, cfg.pre_vote);
    // libraft counts applied entries since the last snapshot; at the threshold it asks
    // fsm_snapshot for the journal_state and hands the result to raft_io's snapshot_put with
    // `trailing`, which compacts the store.
    raft_set_snapshot_threshold(r, cfg.snapshot_threshold == 0
                                       ? std::numeric_limits<unsigned>::max()
                                       : cfg.snapshot_threshold);
    raft_set_snapshot_trailing(r, cfg.snapshot_trailing);
    if (cfg.bootstrap) {
      raft_configuration conf;
      raft_configuration_init(&conf);
      std::vector<std::pair<std::uint64_t, std::string>> voters{{cfg.id, cfg.address}};
      for (const auto& [id, peer] : peers) voters.emplace_back(id, peer.address);
      // Every replica of a new cluster writes the same entry 1, whatever order it was told.
      std::sort(voters.begin(), voters.end());
      int rv = 0;
      for (const auto& [id, address] : voters)
        if (rv == 0) rv = raft_configuration_add(&conf, id, address.c_str(), RAFT_VOTER);
      if (rv == 0) rv = raft_bootstrap(r, &conf);
      raft_configuration_close(&conf);
      if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) return raft_error("raft_bootstrap", rv);
    }
    if (int rv = raft_start(r); rv != 0) return raft_error("raft_start", rv);
    engine->started = true;
    note_changes();
    return caf::none;
  }

  // Sends `f` on `link` through the fault switch. A frame a fault loses counts as sent: libraft
  // sees what a real network fault would show it, silence.
  void send_to_peer(std::uint64_t to, const raft_link& link, wire::frame f) {
    if (!cfg.faults) {
      self->send(link, std::move(f));
      return;
    }
    const auto fault = cfg.faults->get(to);
    if (fault.cut_outgoing || fault_drops(fault.drop_ratio)) {
      ++counts.frames_fault_outgoing_dropped;
      if (metrics) metrics->fault_outgoing_dropped->inc();
      return;
    }
    auto hold_ms = delay_order.delay_for(to, now_ms(), fault.delay_ms);
    if (!hold_ms) {
      self->send(link, std::move(f));
      return;
    }
    ++counts.frames_fault_delayed;
    if (metrics) metrics->fault_delayed->inc();
    self->delayed_send(link, std::chrono::milliseconds{*hold_ms}, std::move(f));
  }

  std::int64_t now_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock->monotonic()).count();
  }

  bool fault_drops(double ratio) {
    if (ratio <= 0) return false;
    if (ratio >= 1) return true;
    // 53 random bits as a double in [0, 1): the same sequence on every platform.
    const double draw = static_cast<double>(fault_rng() >> 11) * 0x1.0p-53;
    return draw < ratio;
  }

  void close() {
    if (!engine || !engine->initialised || engine->closed) return;
    // Pending proposals and a pending transfer are failed by libraft from inside raft_close;
    // the io cancels its requests and calls back at once (caf_raft_io::do_close).
    raft_close(raft(), on_raft_closed);
    if (!engine->closed) std::abort();  // our io closes synchronously; anything else is a bug
    for (auto& [req, p] : proposals)
      p->promise.deliver(make_error(replicator_errc::shutdown, "the replicator stopped"));
    proposals.clear();
  }

  static void on_raft_closed(struct raft* r) {
    static_cast<replicator_state*>(r->data)->engine->closed = true;
  }

  caf::error raft_error(const char* what, int rv) {
    std::string detail = std::string{what} + ": " + raft_strerror(rv);
    if (engine && engine->initialised && *raft_errmsg(raft()) != '\0')
      detail += std::string{" ("} + raft_errmsg(raft()) + ")";
    return make_error(replicator_errc::raft_failed, std::move(detail));
  }

  // --- libraft's state machine: committed entries go to the subscribers ------------------

  static int fsm_apply(raft_fsm* fsm, const raft_buffer* buf, void** result) {
    auto* st = static_cast<replicator_state*>(fsm->data);
    // libraft applies in log order and advances last_applied after each apply returns.
    const std::uint64_t index = raft_last_applied(st->raft()) + 1;
    if (index <= st->last_delivered) std::abort();  // libraft broke its ordering: a bug
    st->last_delivered = index;
    committed_entry entry;
    entry.index = index;
    const auto* bytes = static_cast<const std::uint8_t*>(buf->base);
    entry.payload.assign(bytes, bytes + buf->len);
    st->state->apply(index, entry.payload);
    for (const auto& sub : st->subscribers) st->self->send(sub, committed_atom::value, entry);
    *result = nullptr;
    return 0;
  }

  // libraft 0.15 (fsm version 1): called at last_applied, synchronously; libraft frees the
  // buffers (raft_free) once raft_io's snapshot_put completes.
  static int fsm_snapshot(raft_fsm* fsm, raft_buffer** bufs, unsigned* n_bufs) {
    auto* st = static_cast<replicator_state*>(fsm->data);
    auto bytes = st->state->serialize();
    auto* out = static_cast<raft_buffer*>(raft_malloc(sizeof(raft_buffer)));
    if (out == nullptr) return RAFT_NOMEM;
    out->len = bytes.size();
    out->base = raft_malloc(bytes.empty() ? 1 : bytes.size());
    if (out->base == nullptr) {
      raft_free(out);
      return RAFT_NOMEM;
    }
    if (!bytes.empty()) std::memcpy(out->base, bytes.data(), bytes.size());
    *bufs = out;
    *n_bufs = 1;
    ++st->counts.snapshots_taken;
    if (st->metrics) st->metrics->snapshots_taken->inc();
    return 0;
  }

  // At start (a snapshot in the store) and on InstallSnapshot from a leader. On success the
  // FSM owns buf->base (libraft 0.15 snapshotRestore); on failure libraft keeps it.
  static int fsm_restore(raft_fsm* fsm, raft_buffer* buf) {
    auto* st = static_cast<replicator_state*>(fsm->data);
    const auto* bytes = static_cast<const std::uint8_t*>(buf->base);
    std::vector<std::uint8_t> data(bytes, bytes + buf->len);
    if (auto err = st->state->restore(data)) {
      ++st->counts.storage_errors;
      st->last_error = "restoring a snapshot failed: " + st->self->system().render(err);
      return RAFT_CORRUPT;
    }
    raft_free(buf->base);
    // libraft frees the array `buf` lies in after a restore, and only then (see
    // caf_raft_io::snapshot_restored).
    st->engine->io->snapshot_restored(buf);
    if (st->engine->started) {
      ++st->counts.snapshots_installed;
      if (st->metrics) st->metrics->snapshots_installed->inc();
      // The log before the snapshot never reaches the subscribers: what it meant does.
      for (const auto& sub : st->subscribers) st->send_covered(sub);
    }
    return 0;
  }

  void send_covered(const commit_subscriber& sub) {
    for (auto& payload : state->covered_records())
      self->send(sub, committed_atom::value, committed_entry{0, std::move(payload), true});
  }

  // --- Proposals ---------------------------------------------------------------------------

  caf::error not_leader_error() {
    raft_id id = 0;
    const char* address = nullptr;
    raft_leader(raft(), &id, &address);
    return make_not_leader("replica " + std::to_string(cfg.id) + " is not the leader", id,
                           address != nullptr ? address : "");
  }

  caf::result<std::uint64_t> propose(std::vector<std::uint8_t>& bytes) {
    if (!running()) return make_error(replicator_errc::shutdown, "the replicator is not running");
    if (raft_state(raft()) != RAFT_LEADER) return not_leader_error();
    if (bytes.size() > cfg.record_bytes_max) {
      if (metrics) metrics->proposals_failed->inc();
      return make_error(replicator_errc::record_too_large,
                        "record of " + std::to_string(bytes.size()) +
                            " bytes exceeds record_bytes_max " +
                            std::to_string(cfg.record_bytes_max));
    }
    if (proposals.size() >= cfg.proposals_in_flight_max)
      return make_error(replicator_errc::overloaded,
                        std::to_string(proposals.size()) + " proposals already in flight");
    raft_buffer buf;
    buf.len = bytes.size();
    buf.base = raft_malloc(bytes.empty() ? 1 : bytes.size());
    if (buf.base == nullptr)
      return make_error(replicator_errc::overloaded, "out of memory for the record");
    if (!bytes.empty()) std::memcpy(buf.base, bytes.data(), bytes.size());
    auto p = std::make_unique<proposal>();
    p->owner = this;
    p->req.data = p.get();
    p->promise = self->make_response_promise<std::uint64_t>();
    auto promise = p->promise;
    // The promise owns this request's response from here on: failures go through it too.
    if (int rv = raft_apply(raft(), &p->req, &buf, 1, on_applied); rv != 0) {
      raft_free(buf.base);  // ownership passes to libraft only on success
      if (metrics) metrics->proposals_failed->inc();
      promise.deliver(rv == RAFT_NOTLEADER ? not_leader_error() : raft_error("raft_apply", rv));
      return promise;
    }
    if (metrics) {
      metrics->proposals->inc();
      metrics->proposed_bytes->inc(bytes.size());
    }
    proposals.emplace(&p->req, std::move(p));
    return promise;
  }

  static void on_applied(struct raft_apply* req, int status, void*) {
    auto* p = static_cast<proposal*>(req->data);
    p->owner->finish_proposal(req, status);
  }

  void finish_proposal(struct raft_apply* req, int status) {
    auto it = proposals.find(req);
    if (it == proposals.end()) return;
    auto p = std::move(it->second);
    proposals.erase(it);
    if (metrics) (status == 0 ? metrics->committed : metrics->proposals_failed)->inc();
    switch (status) {
      case 0:
        p->promise.deliver(static_cast<std::uint64_t>(req->index));
        return;
      case RAFT_LEADERSHIPLOST:
        p->promise.deliver(
            make_error(replicator_errc::lost_leadership,
                       "leadership lost before record " + std::to_string(req->index) +
                           " committed; it may still commit: retry with the same request id"));
        return;
      case RAFT_NOTLEADER:
        p->promise.deliver(not_leader_error());
        return;
      case RAFT_SHUTDOWN:
      case RAFT_CANCELED:
        p->promise.deliver(make_error(
            replicator_errc::shutdown,
            "the replicator stopped before record " + std::to_string(req->index) + " committed"));
        return;
      case RAFT_IOERR:
      case RAFT_NOSPACE:
        p->promise.deliver(make_error(
            replicator_errc::storage_failed,
            "writing record " + std::to_string(req->index) + " failed: " + raft_strerror(status)));
        return;
      default:
        p->promise.deliver(raft_error("apply", status));
    }
  }

  // --- Leadership transfer -------------------------------------------------------------------

  caf::result<std::uint64_t> start_transfer(std::uint64_t target) {
    if (!running()) return make_error(replicator_errc::shutdown, "the replicator is not running");
    if (raft_state(raft()) != RAFT_LEADER) return not_leader_error();
    if (transfer)
      return make_error(replicator_errc::overloaded, "a leadership transfer is already running");
    auto t = std::make_unique<transfer_request>();
    t->owner = this;
    t->target = target;
    t->req.data = t.get();
    t->promise = self->make_response_promise<std::uint64_t>();
    auto promise = t->promise;
    // The promise owns this request's response from here on: failures go through it too.
    if (int rv = raft_transfer(raft(), &t->req, target, on_transferred); rv != 0) {
      if (rv == RAFT_BADID || rv == RAFT_NOTFOUND)
        promise.deliver(make_error(replicator_errc::bad_target,
                                   "server " + std::to_string(target) + " is not a voting peer"));
      else
        promise.deliver(raft_error("raft_transfer", rv));
      return promise;
    }
    transfer = std::move(t);
    return promise;
  }

  static void on_transferred(struct raft_transfer* req) {
    auto* t = static_cast<transfer_request*>(req->data);
    t->owner->finish_transfer();
  }

  void finish_transfer() {
    if (!transfer) return;
    auto t = std::move(transfer);
    raft_id leader = 0;
    const char* address = nullptr;
    raft_leader(raft(), &leader, &address);
    if (leader == t->target)
      t->promise.deliver(static_cast<std::uint64_t>(leader));
    else
      t->promise.deliver(
          make_error(replicator_errc::transfer_failed, "server " + std::to_string(t->target) +
                                                           " did not take over; leader is now " +
                                                           std::to_string(leader)));
  }

  // --- Membership: a fenced site back as a voter -----------------------------------------------

  const raft_server* configured(std::uint64_t id) {
    auto* r = raft();
    for (unsigned i = 0; i < r->configuration.n; ++i)
      if (r->configuration.servers[i].id == id) return &r->configuration.servers[i];
    return nullptr;
  }

  std::uint64_t voter_count() {
    auto* r = raft();
    std::uint64_t n = 0;
    for (unsigned i = 0; i < r->configuration.n; ++i)
      if (r->configuration.servers[i].role == RAFT_VOTER) ++n;
    return n;
  }

  caf::error membership_error(std::uint64_t id, const std::string& why) {
    return make_error(replicator_errc::membership_failed,
                      "adding server " + std::to_string(id) + " as a voter: " + why);
  }

  caf::result<std::uint64_t> start_add_voter(std::uint64_t id) {
    if (!running()) return make_error(replicator_errc::shutdown, "the replicator is not running");
    if (raft_state(raft()) != RAFT_LEADER) return not_leader_error();
    auto peer = peers.find(id);
    if (peer == peers.end() || id == cfg.id)
      return membership_error(id, "it is not one of this replica's configured peers");
    const auto* server = configured(id);
    if (server != nullptr && server->role == RAFT_VOTER) return voter_count();
    if (membership) return membership_error(id, "a membership change is already running");
    auto m = std::make_unique<membership_request>();
    m->owner = this;
    m->id = id;
    m->req.data = m.get();
    m->promise = self->make_response_promise<std::uint64_t>();
    auto promise = m->promise;
    // Already a spare or standby (an earlier attempt got that far): straight to the promotion.
    int rv = 0;
    if (server != nullptr) {
      m->promoting = true;
      rv = raft_assign(raft(), &m->req, id, RAFT_VOTER, on_changed);
    } else {
      rv = raft_add(raft(), &m->req, id, peer->second.address.c_str(), on_changed);
    }
    if (rv != 0) {
      promise.deliver(rv == RAFT_NOTLEADER ? not_leader_error()
                                           : membership_error(id, raft_strerror(rv)));
      return promise;
    }
    membership = std::move(m);
    return promise;
  }

  static void on_changed(struct raft_change* req, int status) {
    auto* m = static_cast<membership_request*>(req->data);
    m->owner->finish_change(status);
  }

  void finish_change(int status) {
    if (!membership) return;
    auto& m = *membership;
    if (status == 0 && !m.promoting) {
      // Added as a spare; libraft now catches it up and commits it as a voter.
      m.promoting = true;
      const int rv = raft_assign(raft(), &m.req, m.id, RAFT_VOTER, on_changed);
      if (rv == 0) return;
      status = rv;
    }
    auto done = std::move(membership);
    if (status == 0)
      done->promise.deliver(voter_count());
    else if (status == RAFT_NOTLEADER || status == RAFT_LEADERSHIPLOST)
      done->promise.deliver(make_error(
          replicator_errc::lost_leadership,
          "leadership lost while adding server " + std::to_string(done->id) +
              (done->promoting ? " (it may be a spare now: ask the new leader again)" : "")));
    else
      done->promise.deliver(membership_error(
          done->id, std::string{done->promoting ? "promotion to voter failed: "
                                                : "adding it as a spare failed: "} +
                        raft_strerror(status)));
  }

  // --- Incoming frames ---------------------------------------------------------------------

  enum class drop_reason { malformed, oversize, unsealed, misaddressed, shutdown, fault };

  void receive(const wire::frame& f) {
    ++counts.frames_received;
    if (metrics) metrics->frames_received->inc();
    if (!running()) {
      drop(drop_reason::shutdown, "frame after shutdown");
      return;
    }
    auto decoded = raft_codec::decode(f, cfg.frame_limits);
    if (!decoded) {
      const auto& err = decoded.error();
      auto reason = drop_reason::malformed;
      std::string why = self->system().render(err);
      if (err.category() == wire::wire_category::value) {
        switch (static_cast<wire::wire_errc>(err.code())) {
          case wire::wire_errc::payload_too_large:
            reason = drop_reason::oversize;
            why = self->system().render(make_error(
                replicator_errc::frame_too_large,
                "frame of " + std::to_string(f.payload.size()) +
                    " payload bytes from a peer exceeds frame_limits.payload_bytes_max " +
                    std::to_string(cfg.frame_limits.payload_bytes_max)));
            break;
          case wire::wire_errc::bad_seal:
          case wire::wire_errc::stale_epoch:
            reason = drop_reason::unsealed;
            break;
          default:
            break;
        }
      }
      drop(reason, std::move(why));
      return;
    }
    auto& msg = **decoded;
    if (msg.receiver_id() != cfg.id) {
      drop(drop_reason::misaddressed,
           "frame addressed to server " + std::to_string(msg.receiver_id()));
      return;
    }
    const auto sender = msg.message().server_id;
    if (cfg.faults && cfg.faults->get(sender).cut_incoming) {
      drop(drop_reason::fault, "frame from server " + std::to_string(sender) +
                                   " dropped: a link fault cuts that peer's incoming frames");
      return;
    }
    watch->heard_from(sender, now_ms());
    engine->io->receive(msg.message());
    msg.release();  // libraft owns the entries / snapshot buffers now
    note_changes();
  }

  void drop(drop_reason reason, std::string why) {
    ++counts.frames_dropped;
    const char* label = "malformed";
    switch (reason) {
      case drop_reason::malformed:
        ++counts.frames_dropped_malformed;
        break;
      case drop_reason::oversize:
        ++counts.frames_dropped_oversize;
        label = "oversize";
        break;
      case drop_reason::unsealed:
        ++counts.frames_dropped_unsealed;
        label = "unsealed";
        break;
      case drop_reason::misaddressed:
        ++counts.frames_dropped_misaddressed;
        label = "misaddressed";
        break;
      case drop_reason::shutdown:
        ++counts.frames_dropped_shutdown;
        label = "after_shutdown";
        break;
      case drop_reason::fault:
        ++counts.frames_dropped_fault;
        label = "fault_cut_incoming";
        break;
    }
    if (metrics) metrics->dropped(label).inc();
    last_error = std::move(why);
  }

  // --- Observers ------------------------------------------------------------------------

  replicator_status status() {
    replicator_status s = counts;
    s.id = cfg.id;
    s.address = cfg.address;
    s.last_error = last_error;
    if (engine && engine->io) s.append_frames_split = engine->io->append_frames_split();
    if (!running()) return s;
    auto* r = raft();
    s.role = static_cast<replica_role>(raft_state(r));
    s.term = r->current_term;
    raft_id leader = 0;
    const char* address = nullptr;
    raft_leader(r, &leader, &address);
    s.leader_id = leader;
    s.leader_address = address != nullptr ? address : "";
    s.commit_index = r->commit_index;
    s.last_applied = raft_last_applied(r);
    s.last_index = raft_last_index(r);
    s.snapshot_index = r->log.snapshot.last_index;
    for (const auto& [id, match] : voting_peers()) {
      const auto* reading = watch->reading_of(id);
      s.peer_ids.push_back(id);
      s.peer_match_index.push_back(match);
      s.peer_lag_ms.push_back(reading != nullptr ? reading->lag_ms : 0);
      s.peer_silence_ms.push_back(reading != nullptr ? reading->silence_ms : 0);
    }
    s.alerts = watch->firing();
    return s;
  }

  /// While leading: each other voter's id and match index (libraft's progress). Voters only:
  /// a spare being caught up cannot take leadership or count for a majority. Empty otherwise.
  std::map<std::uint64_t, std::uint64_t> voting_peers() {
    std::map<std::uint64_t, std::uint64_t> out;
    auto* r = raft();
    if (raft_state(r) != RAFT_LEADER || r->leader_state.progress == nullptr) return out;
    for (unsigned i = 0; i < r->configuration.n; ++i) {
      const auto& server = r->configuration.servers[i];
      if (server.id != cfg.id && server.role == RAFT_VOTER)
        out[server.id] = r->leader_state.progress[i].match_index;
    }
    return out;
  }

  // --- The leader's watch on its peers (peer_watch.hpp) ---------------------------------

  void watch_peers() {
    if (!running() || !watch->leading() || raft_state(raft()) != RAFT_LEADER) return;
    tell(watch->evaluate(voting_peers(), raft_last_index(raft()), now_ms()));
    if (!metrics) return;
    for (const auto& reading : watch->readings()) {
      metrics->peer_lag(reading.peer).set(static_cast<double>(reading.lag_ms) / 1000.0);
      metrics->peer_silence(reading.peer).set(static_cast<double>(reading.silence_ms) / 1000.0);
    }
  }

  void tell(const std::vector<alert_change>& changes) {
    for (const auto& c : changes) {
      if (metrics) metrics->publish(c);
      if (cfg.log) cfg.log((c.firing ? "ALERT " : "alert ") + peer_watch::describe(c, cfg.watch));
    }
  }

  void publish_metrics() {
    if (!metrics || !running()) return;
    auto* r = raft();
    raft_id leader = 0;
    const char* address = nullptr;
    raft_leader(r, &leader, &address);
    metrics->role->set(raft_state(r));
    metrics->term->set(static_cast<double>(r->current_term));
    metrics->leader_id->set(static_cast<double>(leader));
    metrics->commit_index->set(static_cast<double>(r->commit_index));
    metrics->last_applied->set(static_cast<double>(raft_last_applied(r)));
    metrics->last_index->set(static_cast<double>(raft_last_index(r)));
    metrics->snapshot_index->set(static_cast<double>(r->log.snapshot.last_index));
    const auto split = engine->io->append_frames_split();
    metrics->append_frames_split->inc(split - split_seen);
    split_seen = split;
  }

  void stand_down_watch() {
    tell(watch->stand_down());
    if (!metrics) return;
    // Only a leader measures: a follower's lag gauges would show a stale leader's view.
    auto* r = raft();
    for (unsigned i = 0; i < r->configuration.n; ++i) {
      const auto id = r->configuration.servers[i].id;
      if (id == cfg.id) continue;
      metrics->peer_lag(id).set(0);
      metrics->peer_silence(id).set(0);
    }
  }

  // Called after every entry into libraft: tells observers about a new role, term or leader,
  // and stops the actor if libraft gave up (an I/O error it cannot recover from).
  void note_changes() {
    if (!running()) return;
    publish_metrics();
    auto* r = raft();
    const int role = raft_state(r);
    if (role == RAFT_LEADER && !watch->leading())
      watch->lead(raft_last_index(r), now_ms());
    else if (role == RAFT_LEADER)
      watch->appended(raft_last_index(r), now_ms());
    else if (watch->leading())
      stand_down_watch();
    raft_id leader = 0;
    const char* address = nullptr;
    raft_leader(r, &leader, &address);
    if (role == seen_role && r->current_term == seen_term && leader == seen_leader) return;
    seen_role = role;
    seen_term = r->current_term;
    seen_leader = leader;
    auto s = status();
    for (const auto& obs : observers) self->send(obs, role_changed_atom::value, s);
    if (role == RAFT_UNAVAILABLE) {
      auto err = raft_error("libraft stopped", RAFT_SHUTDOWN);
      close();
      self->quit(std::move(err));
    }
  }
};

replicator_impl::behavior_type replicator_main(replicator_self* self, replicator_config cfg,
                                               journal::log_store* store,
                                               const clock_source* clock) {
  auto& st = self->state;
  st.self = self;
  st.store = store;
  st.clock = clock;
  for (auto& peer : cfg.peers) st.peers.emplace(peer.id, peer);
  st.subscribers = cfg.subscribers;
  st.observers = cfg.role_observers;
  st.cfg = std::move(cfg);
  for (const auto& sub : st.subscribers) self->monitor(sub);
  for (const auto& obs : st.observers) self->monitor(obs);
  self->set_down_handler([self](const caf::down_msg& down) {
    auto& s = self->state;
    auto gone = [&](const auto& handle) { return handle.address() == down.source; };
    s.subscribers.erase(std::remove_if(s.subscribers.begin(), s.subscribers.end(), gone),
                        s.subscribers.end());
    s.observers.erase(std::remove_if(s.observers.begin(), s.observers.end(), gone),
                      s.observers.end());
  });
  if (auto err = st.start()) {
    st.close();
    self->quit(std::move(err));
    return replicator_impl::behavior_type::make_empty_behavior();
  }
  return {
      [self](propose_atom, std::vector<std::uint8_t>& bytes) -> caf::result<std::uint64_t> {
        auto result = self->state.propose(bytes);
        self->state.note_changes();
        return result;
      },
      [self](subscribe_atom, commit_subscriber sub) -> caf::result<std::uint64_t> {
        auto& s = self->state;
        if (s.subscribers.size() >= s.cfg.subscribers_max)
          return make_error(replicator_errc::overloaded,
                            std::to_string(s.subscribers.size()) + " subscribers already");
        self->monitor(sub);
        s.send_covered(sub);
        s.subscribers.push_back(std::move(sub));
        return s.last_delivered;
      },
      [self](watch_role_atom, role_observer obs) -> caf::result<replicator_status> {
        auto& s = self->state;
        if (s.observers.size() >= s.cfg.subscribers_max)
          return make_error(replicator_errc::overloaded,
                            std::to_string(s.observers.size()) + " role observers already");
        self->monitor(obs);
        s.observers.push_back(std::move(obs));
        return s.status();
      },
      [self](status_atom) -> replicator_status { return self->state.status(); },
      [self](transfer_atom, std::uint64_t target) -> caf::result<std::uint64_t> {
        auto result = self->state.start_transfer(target);
        self->state.note_changes();
        return result;
      },
      [self](add_voter_atom, std::uint64_t id) -> caf::result<std::uint64_t> {
        auto result = self->state.start_add_voter(id);
        self->state.note_changes();
        return result;
      },
      [self](peer_link_atom, std::uint64_t id, raft_link link) {
        auto it = self->state.peers.find(id);
        if (it != self->state.peers.end()) it->second.link = std::move(link);
      },
      [self](const wire::frame& f) { self->state.receive(f); },
      [self](io_done_atom, std::uint64_t token, std::int32_t status) {
        auto& s = self->state;
        if (!s.running()) return;
        s.engine->io->complete(token, status);
        s.note_changes();
      },
      [self](tick_atom) {
        auto& s = self->state;
        if (!s.running()) return;
        s.engine->io->tick();
        s.note_changes();
        s.watch_peers();
      },
  };
}

}  // namespace

replicator_actor spawn_replicator(caf::actor_system& sys, replicator_config cfg,
                                  journal::log_store& store, const clock_source& clock) {
  return sys.spawn(replicator_main, std::move(cfg), &store, &clock);
}

void announce_replicator_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<committed_entry>("bastion.committed_entry");
  cfg.add_message_type<replicator_status>("bastion.replicator_status");
  cfg.add_error_category(replicator_category::value, render_replicator_error);
}

}  // namespace bastion::actors
