#pragma once
// log_store: the durable storage under one Raft replica (DESIGN.md §5). The replicator's
// raft_io implementation (actors/replicator) calls it; file_store (runtime/journal) is the
// real one, memory_store the deterministic test double. Entries are opaque bytes here: what
// they mean (admission, completion, configuration change, epoch start) is schemas/'s business.
//
// Contract shared by every implementation:
// - Indexes start at 1 and are contiguous. start_index is the index of the first entry kept
//   after snapshots compacted the log.
// - Operations take effect in the order they are called: an append issued before a truncate
//   is applied (or failed) before it, and vice versa. Implementations queue them in order.
// - save_hard_state returns only once term and vote are durable (fsync'd), because a Raft reply
//   may depend on them immediately.
// - append completes through its callback once the entries are durable (group commit may merge
//   several appends into one fsync). The callback may run on the store's I/O thread: callers
//   must hop back to their own context (an actor sends itself a message) before touching state.
// - A failed append (disk full, I/O error) reports an error and leaves no half-written entry
//   that a later load() would return; nothing it failed is ever acknowledged.
// - load() never returns a corrupt entry. A torn tail (partial last write) is truncated; a
//   corrupt entry before the tail is refused with an error naming the file and offset unless
//   the store was opened with repair enabled.

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace bastion::journal {

/// One Raft log entry. `type` is libraft's entry type (RAFT_COMMAND, RAFT_BARRIER, RAFT_CHANGE).
struct log_entry {
  std::uint64_t term = 0;
  std::uint8_t type = 0;
  std::vector<std::uint8_t> payload;
};

/// Raft's persistent term and vote (0 = no vote).
struct hard_state {
  std::uint64_t term = 0;
  std::uint64_t voted_for = 0;
};

struct snapshot {
  std::uint64_t index = 0;  // last entry the snapshot covers
  std::uint64_t term = 0;   // its term
  std::uint64_t configuration_index = 0;
  std::vector<std::uint8_t> configuration;  // libraft-encoded configuration
  std::vector<std::uint8_t> data;           // the state machine's snapshot
};

/// What a replica finds on start.
struct recovered_log {
  hard_state hard;
  std::optional<snapshot> snap;
  std::uint64_t start_index = 1;  // index of entries[0]
  std::vector<log_entry> entries;
};

class log_store {
 public:
  using completion = std::function<void(caf::error)>;

  virtual ~log_store() = default;

  /// Reads everything back after a start or a crash. Called once, before anything else.
  virtual caf::expected<recovered_log> load() = 0;

  /// Durably records term and vote before returning.
  virtual caf::error save_hard_state(const hard_state& hs) = 0;

  /// Appends entries starting at `first_index` (the index after the current last entry).
  /// `done` runs once they are durable, or with the error that prevented it.
  virtual void append(std::uint64_t first_index, std::vector<log_entry> entries,
                      completion done) = 0;

  /// Deletes the entry at `index` and every later one, ordered after earlier appends.
  /// `done` runs once the truncation is durable.
  virtual void truncate(std::uint64_t index, completion done) = 0;

  /// Stores a snapshot, then drops entries before `snap.index - trailing` (keeping `trailing`
  /// entries so slow followers can still be fed from the log). `done` runs once durable.
  /// As in libraft's raft_io, `trailing == 0` means an installed snapshot: the whole log is
  /// dropped and the next append starts at `snap.index + 1`.
  virtual void put_snapshot(snapshot snap, std::uint64_t trailing, completion done) = 0;

  /// The latest stored snapshot, if any.
  virtual caf::expected<std::optional<snapshot>> get_snapshot() = 0;
};

}  // namespace bastion::journal
