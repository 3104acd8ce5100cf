#pragma once
// The release rule of DESIGN.md §4, without CAF or the journal: what a primary may let out of
// the building, and when.
//
//   - A request's tokens leave only after its admission record is committed; tokens produced
//     earlier (prefill runs while the record commits) are held, in order, and flushed then.
//   - Its final answer (the unary response, or the final streamed event) leaves only after its
//     completion record is committed.
//   - When the primary loses leadership, every request it has not finished releasing ends with
//     exactly one retryable error: `not_primary` when its admission never committed (the client
//     saw nothing), `outcome_unknown` when it did (the record may survive on the new leader).
//     The gate then refuses new requests until it is opened again in a later epoch.
//   - A request id whose completion is committed is never run again: begin() returns the
//     journaled outcome. Completions committed at other sites are applied too, so a retry at a
//     new leader finds them. The exception is a cancellation (the client went away, a drain):
//     nobody who stayed saw an answer, so a retry runs again, and the first answer committed
//     after it becomes the id's outcome for good (a cancellation never replaces an answer).
//
// The owner (the site's coordinator) proposes the records and reports their commits; the gate
// only decides. Not thread-safe: owned by one actor. Every bound has a behaviour: too many
// requests in flight is `overloaded`, too many held tokens fails the request as overloaded,
// the outcome table forgets its oldest entries.

#include "actors/coordination/recent_map.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace bastion::coordination {

struct release_gate_limits {
  std::size_t requests_max = 4096;     // in flight at once
  std::size_t held_tokens_max = 4096;  // per request, while its admission commits
  std::size_t outcomes_max = 1 << 16;  // committed outcomes remembered for retries
};

/// One piece of streamed output, opaque to the gate.
struct held_token {
  std::string text;
  std::uint32_t id = 0;
};

enum class begin_code : std::uint8_t {
  started,              // propose the admission record now
  replay,               // already completed: answer with `outcome`, run nothing
  duplicate_in_flight,  // the same id is running here: the client must wait or use another id
  not_primary,          // the gate is closed (not the ready leader)
  overloaded,           // requests_max in flight
  id_reused,            // the id's admission committed for a different request (another
                        // principal, model or prompt): neither replayed nor run
};

struct begin_result {
  begin_code code = begin_code::started;
  std::string outcome;  // replay: the journaled outcome, as the owner serialised it
};

enum class failure_code : std::uint8_t { not_primary, outcome_unknown, overloaded };
const char* to_string(failure_code c) noexcept;

/// A request the gate ended without releasing its answer.
struct gate_failure {
  std::string request_id;
  failure_code code = failure_code::not_primary;
};

class release_gate {
 public:
  explicit release_gate(release_gate_limits limits = {});

  /// Opens admission for `epoch` (the leader's, after its epoch-start record committed).
  /// REQUIRES: epoch greater than any epoch opened before.
  void open(std::uint64_t epoch);
  bool is_open() const noexcept { return open_; }
  std::uint64_t epoch() const noexcept { return epoch_; }

  /// `fingerprint` identifies the request behind the id (admission_fingerprint: principal,
  /// model, prompt digest); empty: not compared.
  begin_result begin(const std::string& request_id, const std::string& fingerprint = {});

  /// An admission record committed (here or at another site, replayed from the journal):
  /// remembers which request owns the id, so a later begin() with the same id and another
  /// fingerprint is refused. The first admission of an id wins; bounded like the outcomes.
  void admission_seen(const std::string& request_id, const std::string& fingerprint);

  /// The request produced a token: returns what may leave now (empty while held). A request
  /// that overflows its held tokens is failed: see failures().
  std::vector<held_token> on_token(const std::string& request_id, held_token token);

  /// Its admission record committed: the held tokens, in order, leave now (also when the
  /// request has finished meanwhile: they go before its final answer).
  std::vector<held_token> admission_committed(const std::string& request_id);

  /// The request finished (an answer or a failure). Returns true when its completion record
  /// must be proposed now: always, for a request in flight that had not finished.
  bool finish(const std::string& request_id);

  /// Its completion record, holding `outcome`, committed: remembers the outcome for retries and
  /// returns true when the request's answer is to be released now (once). Unknown ids
  /// (completions of other sites, replayed from the journal) are only remembered.
  /// `cancelled`: the outcome is a cancellation, which a retry runs past (see above).
  bool completion_committed(const std::string& request_id, const std::string& outcome,
                            bool cancelled = false);

  /// The request ended before anything about it was journaled (cancelled or refused by the
  /// scheduler before its admission committed); forgets it. Returns false if its admission
  /// had committed: then it must go through finish() so a completion is journaled.
  bool abandon(const std::string& request_id);

  /// Drops a request whose record could not be proposed (the owner tells its client why).
  /// Returns false for an unknown id.
  bool forget(const std::string& request_id) { return requests_.erase(request_id) != 0; }

  /// A handover is draining this leader: new requests are refused (begin() says not_primary)
  /// while those in flight finish and release as usual. resume_admission() undoes it when the
  /// handover fails.
  void pause_admission() noexcept { admitting_ = false; }
  void resume_admission() noexcept { admitting_ = true; }

  /// Leadership lost: closes the gate and ends every request not yet released, each with one
  /// retryable failure.
  std::vector<gate_failure> lose_leadership();

  /// Failures the gate decided on its own (held-token overflow) since the last call.
  std::vector<gate_failure> take_failures();

  std::size_t in_flight() const noexcept { return requests_.size(); }
  std::size_t outcomes_remembered() const noexcept { return outcomes_.size(); }

 private:
  enum class phase : std::uint8_t { admitting, streaming, completing };
  struct request_state {
    phase at = phase::admitting;
    bool admitted = false;  // its admission record committed
    std::vector<held_token> held;
  };
  struct outcome_entry {
    std::string outcome;
    bool cancelled = false;
  };
  void remember(const std::string& request_id, const std::string& outcome, bool cancelled);

  release_gate_limits limits_;
  bool open_ = false;
  bool admitting_ = true;
  std::uint64_t epoch_ = 0;
  std::map<std::string, request_state> requests_;
  recent_map<outcome_entry> outcomes_;
  recent_map<std::string> fingerprints_;  // request id -> its admission's fingerprint
  std::vector<gate_failure> failures_;
};

}  // namespace bastion::coordination
