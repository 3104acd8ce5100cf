#pragma once
// journal_state: the replicator's state machine, the thing a Raft snapshot captures so the log
// before it can be compacted (docs/decisions/0006-journal-state-for-snapshots.md).
//
// The replicator calls apply() for every committed command entry, in log order, on its own
// actor, before the subscribers hear of it. When libraft decides to compact (every
// replicator_config::snapshot_threshold entries) the replicator stores serialize()'s bytes as
// the snapshot's data; a replica that starts from a snapshot on disk, or receives one from the
// leader (InstallSnapshot), calls restore() with those bytes, and apply() continues from the
// entry after the snapshot. Entries a snapshot covers are never applied again on that replica,
// and its subscribers do not see them: whatever the rest of Bastion needs to remember about
// them must be in the state.
//
// REQUIRES of an implementation: deterministic (the same entries give the same bytes on every
// replica), restore(serialize()) yields an equal state, restore() refuses malformed bytes with
// an error (they come from a peer or a disk) and leaves the state unchanged then, and the
// serialized size is bounded (it travels in one InstallSnapshot frame).

#include <caf/error.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace bastion::actors {

class journal_state {
 public:
  virtual ~journal_state() = default;

  /// Folds in committed command entry `index` (contiguous after restore()/the last apply).
  virtual void apply(std::uint64_t index, const std::vector<std::uint8_t>& payload) = 0;
  /// The whole state, as snapshot data.
  virtual std::vector<std::uint8_t> serialize() const = 0;
  /// Replaces the state with `bytes` (from serialize(), possibly on another replica).
  virtual caf::error restore(const std::vector<std::uint8_t>& bytes) = 0;
  /// Records standing for what the state remembers of entries a subscriber will never see
  /// (compacted into a snapshot, or applied before it subscribed), in the order they were
  /// applied. The replicator hands them to a subscriber when it subscribes and to every
  /// subscriber after an InstallSnapshot, marked committed_entry::restored. Default: none.
  virtual std::vector<std::vector<std::uint8_t>> covered_records() const { return {}; }
};

/// Bounds of journal_summary (STYLE.md 11).
struct journal_summary_limits {
  /// Completed requests remembered; at the bound the oldest is forgotten (a retry of it then
  /// finds no journaled outcome here and the gateway must treat it as unknown).
  std::size_t completions_max = 65536;
  /// Configuration subjects in force; at the bound the subject changed longest ago is
  /// forgotten and counted (configurations_evicted), which an operator alert should watch.
  std::size_t configuration_max = 4096;
  /// Largest serialized summary restore() accepts (it comes from a peer or a disk).
  std::size_t serialized_bytes_max = std::size_t{64} << 20;
  /// Largest single record apply() reads; bigger ones count as unreadable.
  std::size_t record_bytes_max = std::size_t{1} << 20;
  /// A failed request's error message is kept up to this many bytes (it is for people; the
  /// code and reason are what clients act on), so the table stays well under
  /// serialized_bytes_max even when every remembered request failed.
  std::size_t error_message_bytes_max = 256;
};

/// The default journal_state: reads each entry as a schemas/journal.capnp JournalRecord and
/// keeps the latest epoch start, the configuration in force (latest change per subject) and a
/// bounded table of recent completions, request id -> output digest (what a retry needs).
/// Entries that are not JournalRecords are counted and otherwise ignored.
class journal_summary final : public journal_state {
 public:
  struct epoch_start {
    std::uint64_t index = 0;
    std::uint64_t epoch = 0;
    std::string site;
    std::uint64_t leader_id = 0;
    std::uint64_t term = 0;
  };
  /// A failed request's error, as its completion record journaled it.
  struct error_outcome {
    std::uint16_t code = 0;    // schemas/inference.capnp ErrorCode
    std::uint16_t reason = 0;  // schemas/inference.capnp ErrorReason
    std::string message;       // cut to error_message_bytes_max
    std::uint32_t retry_after_ms = 0;
    std::string param;  // the field at fault (Completion.errorParam)
  };
  struct completion {
    std::uint64_t index = 0;
    std::vector<std::uint8_t> output_digest;
    std::uint16_t finish_reason = 0;     // schemas/inference.capnp FinishReason
    std::optional<error_outcome> error;  // set: the request failed with it
  };
  struct configuration_change {
    std::uint64_t index = 0;
    std::vector<std::uint8_t> record;  // the ConfigurationChange as a flat Cap'n Proto message
  };

  explicit journal_summary(journal_summary_limits limits = {});

  void apply(std::uint64_t index, const std::vector<std::uint8_t>& payload) override;
  std::vector<std::uint8_t> serialize() const override;
  caf::error restore(const std::vector<std::uint8_t>& bytes) override;
  /// JournalRecords: each configuration change in force (the coordinator learns the
  /// journaled leadership preference from them), then each remembered completion with its
  /// output digest and finish reason but no text (a retry of it is answered with "only the
  /// digest was kept", never run again), or with its error (a retry gets the same error). Epoch
  /// starts are not repeated: a coordinator acts only on the epoch it opens itself.
  std::vector<std::vector<std::uint8_t>> covered_records() const override;

  std::uint64_t applied_index() const noexcept { return applied_index_; }
  const std::optional<epoch_start>& latest_epoch_start() const noexcept { return epoch_; }
  /// The journaled outcome of `request_id`, if it is still remembered.
  const completion* find_completion(const std::string& request_id) const;
  std::size_t completions() const noexcept { return completions_.size(); }
  /// Subject ("model:<id>", ...) -> the latest change to it.
  const std::map<std::string, configuration_change>& configuration() const noexcept {
    return configuration_;
  }
  std::uint64_t unreadable_records() const noexcept { return unreadable_; }
  std::uint64_t configurations_evicted() const noexcept { return configurations_evicted_; }

 private:
  void remember_completion(std::string request_id, completion c);

  journal_summary_limits limits_;
  std::uint64_t applied_index_ = 0;
  std::optional<epoch_start> epoch_;
  std::map<std::string, configuration_change> configuration_;
  // Insertion order (log order) of the completion table, for eviction and serialization.
  std::map<std::uint64_t, std::string> completion_order_;  // index -> request id
  std::map<std::string, completion> completions_;
  std::uint64_t unreadable_ = 0;
  std::uint64_t configurations_evicted_ = 0;
};

}  // namespace bastion::actors
