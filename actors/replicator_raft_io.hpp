#pragma once
// caf_raft_io: libraft's `struct raft_io` implemented for one replicator actor. Private to
// the replicator. Every function here runs on the actor (libraft is confined to it):
// - storage goes to the log_store; its completions are posted back to the actor
//   (post_completion), which calls complete() before libraft's callback ever runs;
// - sends are encoded at once (raft_codec) and handed to send_frame; their callbacks, too,
//   run only after a hop through the actor's mailbox;
// - time() reads the injected clock, random() the seeded RNG, ticks come from
//   schedule_tick (a CAF timer) and arrive as tick().

#include "runtime/clock/clock.hpp"
#include "runtime/journal/log_store.hpp"
#include "runtime/wire/frame.hpp"

extern "C" {
#include <raft.h>
}

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>

namespace bastion::actors {

class caf_raft_io {
 public:
  struct hooks {
    /// Delivers a frame to the peer with this id; false when there is no link to it.
    std::function<bool(raft_id to, wire::frame f)> send_frame;
    /// Sends (token, raft status) to the actor's own mailbox; may run on any thread.
    std::function<void(std::uint64_t token, int status)> post_completion;
    /// Arms a CAF timer that calls tick() after `ms`.
    std::function<void(unsigned ms)> schedule_tick;
    /// Reports a storage or transport failure worth counting (never a bug).
    std::function<void(std::string what)> report_error;
  };

  /// REQUIRES: `store` and `clock` outlive this object; `recovered` is what store.load()
  /// returned (the store is loaded once, by the actor, before libraft starts).
  caf_raft_io(journal::log_store& store, const clock_source& clock, std::uint64_t rng_seed,
              journal::recovered_log recovered, hooks h);
  ~caf_raft_io();
  caf_raft_io(const caf_raft_io&) = delete;
  caf_raft_io& operator=(const caf_raft_io&) = delete;

  raft_io* io() noexcept { return &io_; }

  /// The log index the next append will get (kept in step with libraft's log).
  std::uint64_t next_index() const noexcept { return next_index_; }

  /// How many AppendEntries results were corrected before sending (see do_send).
  std::uint64_t clamped_results() const noexcept { return clamped_results_; }
  /// What do_recover wrote: the forced configuration entry's index and term (0 until then).
  /// Its append completes through post_completion like any other; `recover_token` is the
  /// token it will carry, so an offline caller (replicator_recovery) can wait for it.
  struct recovered_configuration {
    std::uint64_t index = 0;
    std::uint64_t term = 0;
    std::uint64_t token = 0;
  };
  const recovered_configuration& recovered() const noexcept { return recovered_conf_; }

  /// How many received AppendEntries had leader_commit lowered (see receive).
  std::uint64_t clamped_commits() const noexcept { return clamped_commits_; }

  /// Payload bytes of the entries one AppendEntries frame may carry (see do_send); at least
  /// one entry is always sent. 0: no bound.
  void set_append_frame_bytes_max(std::size_t n) noexcept { append_frame_bytes_max_ = n; }
  /// How many AppendEntries were cut to that bound before sending.
  std::uint64_t append_frames_split() const noexcept { return append_frames_split_; }

  /// The FSM's restore took a snapshot's data from `buf` (call it only on success). For an
  /// InstallSnapshot that is libraft's success path, which frees the array `buf` lies in;
  /// every other outcome leaves that array to us (see run_callback).
  void snapshot_restored(const raft_buffer* buf) noexcept { restored_buf_ = buf; }

  // Driven by the actor.
  void tick();
  void receive(raft_message& msg);
  /// A posted completion arrived back on the actor: run libraft's callback.
  void complete(std::uint64_t token, int status);

 private:
  enum class pending_kind {
    append,
    send,
    truncate,
    snapshot_put,
    snapshot_get,
    bootstrap,
    recover
  };
  struct pending {
    pending_kind kind = pending_kind::append;
    void* req = nullptr;  // libraft's request object of that kind
    raft_io_append_cb append_cb = nullptr;
    raft_io_send_cb send_cb = nullptr;
    raft_io_snapshot_put_cb put_cb = nullptr;
    raft_io_snapshot_get_cb get_cb = nullptr;
    raft_snapshot* got = nullptr;  // snapshot_get: the snapshot built for libraft
    // snapshot_put of an InstallSnapshot: libraft's one-element bufs array, which libraft
    // 0.15 frees only when the snapshot is restored (see run_callback).
    raft_buffer* install_bufs = nullptr;
  };

  // raft_io's functions; `io->impl` is this object.
  static int do_init(raft_io* io, raft_id id, const char* address);
  static void do_close(raft_io* io, raft_io_close_cb cb);
  static int do_load(raft_io* io, raft_term* term, raft_id* voted_for, raft_snapshot** snapshot,
                     raft_index* start_index, raft_entry** entries, size_t* n_entries);
  static int do_start(raft_io* io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv);
  static int do_bootstrap(raft_io* io, const raft_configuration* conf);
  static int do_recover(raft_io* io, const raft_configuration* conf);
  static int do_set_term(raft_io* io, raft_term term);
  static int do_set_vote(raft_io* io, raft_id server_id);
  static int do_send(raft_io* io, raft_io_send* req, const raft_message* message,
                     raft_io_send_cb cb);
  static int do_append(raft_io* io, raft_io_append* req, const raft_entry entries[], unsigned n,
                       raft_io_append_cb cb);
  static int do_truncate(raft_io* io, raft_index index);
  static int do_snapshot_put(raft_io* io, unsigned trailing, raft_io_snapshot_put* req,
                             const raft_snapshot* snapshot, raft_io_snapshot_put_cb cb);
  static int do_snapshot_get(raft_io* io, raft_io_snapshot_get* req, raft_io_snapshot_get_cb cb);
  static raft_time do_time(raft_io* io);
  static int do_random(raft_io* io, int min, int max);

  static caf_raft_io& self(raft_io* io) { return *static_cast<caf_raft_io*>(io->impl); }

  std::uint64_t add_pending(pending p);
  journal::log_store::completion completion_for(std::uint64_t token);
  void run_callback(const pending& p, int status);
  void set_error(const std::string& what);

  raft_io io_{};
  journal::log_store& store_;
  const clock_source& clock_;
  std::mt19937_64 rng_;
  journal::recovered_log recovered_;  // handed to libraft by load(), then cleared
  hooks hooks_;

  raft_id id_ = 0;
  std::string address_;
  journal::hard_state hard_;  // what the store holds durably
  std::uint64_t next_index_ = 1;
  unsigned tick_ms_ = 0;
  raft_io_tick_cb tick_cb_ = nullptr;
  raft_io_recv_cb recv_cb_ = nullptr;
  bool closing_ = false;
  bool load_done_ = false;  // do_load handed the log to libraft
  // The AppendEntries or InstallSnapshot being handled inside recv_cb_, if any: its sender,
  // the last index an AppendEntries proves matched, or the index a snapshot covers (see
  // do_send).
  struct {
    raft_id leader = 0;
    std::uint64_t matched_up_to = 0;
    bool snapshot = false;
    std::uint64_t snapshot_index = 0;
  } answering_;
  // What snapshot_restored last reported; reset around each snapshot_put callback.
  const raft_buffer* restored_buf_ = nullptr;
  std::uint64_t stale_snapshot_answers_ = 0;
  std::uint64_t clamped_results_ = 0;
  std::uint64_t clamped_commits_ = 0;
  std::size_t append_frame_bytes_max_ = 0;
  std::uint64_t append_frames_split_ = 0;

  recovered_configuration recovered_conf_;

  std::uint64_t next_token_ = 1;
  std::map<std::uint64_t, pending> pending_;
};

/// libraft's configuration encoding (format 1: version byte, server count, then per server
/// id, NUL-terminated address and role, padded to 8 bytes), read back into `out`, which must
/// be freshly initialised. Returns 0 or RAFT_MALFORMED. Used for snapshots kept by log_store.
int decode_configuration(const std::vector<std::uint8_t>& bytes, raft_configuration* out);

}  // namespace bastion::actors
