@0x8eed604c0f3468c2;
# What Bastion writes to its replicated journal (DESIGN.md §4, §5): one JournalRecord per
# Raft command entry. The journal keeps digests, not text, by default; a per-level policy may
# add the text later (encrypted once the security work lands). Journal per request, never per
# token. Field numbers are forever: add fields at the end, never renumber.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("bastion::schema::journal");

using Inference = import "inference.capnp";

struct JournalRecord {
  # Wall time at the leader when the record was proposed (ns since the Unix epoch); for people
  # reading the journal, never for ordering (the log index orders records).
  proposedAtNs @0 :UInt64;
  union {
    admission @1 :Admission;
    completion @2 :Completion;
    configurationChange @3 :ConfigurationChange;
    epochStart @4 :EpochStart;
  }
}

enum Decision {
  allow @0;
  deny @1;
}

struct SamplingParams {
  maxTokens @0 :UInt32;
  temperature @1 :Float32;
  topK @2 :UInt32;
  topP @3 :Float32;
  repetitionPenalty @4 :Float32;
  seed @5 :UInt64;             # the seed actually used (minted when the client gave none)
  priority @6 :Inference.Priority;
}

# Committed before the first token leaves (DESIGN.md §4).
struct Admission {
  requestId @0 :Text;
  principal @1 :Text;          # who asked, as authenticated by the gateway
  source @2 :Text;             # where from: client address or integration name
  level @3 :Text;              # the classification level the request ran under
  decision @4 :Decision;
  reason @5 :Text;             # why a deny was a deny; empty for allow
  modelId @6 :Text;
  modelDigest @7 :Data;        # digest of the weights that will answer
  params @8 :SamplingParams;
  promptDigest @9 :Data;       # SM3 digest of the prompt bytes as received (32 bytes)
  promptTokens @10 :UInt32;
}

struct Timings {
  queuedNs @0 :UInt64;         # admission to first scheduled step
  prefillNs @1 :UInt64;
  decodeNs @2 :UInt64;
  totalNs @3 :UInt64;          # admission to release
}

# Committed before the result is released (DESIGN.md §4).
struct Completion {
  requestId @0 :Text;
  outputDigest @1 :Data;       # SM3 digest of the output text (32 bytes)
  finishReason @2 :Inference.FinishReason;
  usage @3 :Inference.Usage;
  timings @4 :Timings;
  modelId @5 :Text;            # the model that answered (a fallback names itself)
  # The answer itself, when the request's level retains text (the default for levels without a
  # digest-only policy): a retry with the same request id after a failover is answered from it.
  outputText @6 :Text;
  # Set when the request failed after its admission committed: a retry gets the same error.
  error @7 :Inference.Error;
  site @8 :Text;               # the site that released it
  epoch @9 :UInt64;            # the primary's epoch at release
  # With error: the request field at fault, in the serving port's terms ("input": the prompt or
  # chat as a whole), so a retry answered from the journal names the same field; error.reason
  # keeps the typed reason. Empty: not about one field.
  errorParam @10 :Text;
}

struct ConfigurationChange {
  changedBy @0 :Text;          # the principal who made the change
  ticket @1 :Text;             # the change ticket it refers to
  union {
    modelDeployed @2 :ModelDeployed;
    policy @3 :PolicyChange;
    principal @4 :PrincipalChange;
    approval @5 :Approval;
    leadership @6 :LeadershipPreference;
  }
}

# Switchover (DESIGN.md §5): the site that should lead whenever its replica has caught up,
# ahead of the default order prod > dr-local > dr-remote. The leader writes it when an
# operator asks (`bastion switchover`); every coordinator applies it when it commits, so the
# new leader does not hand leadership straight back to a site the operator moved it from.
struct LeadershipPreference {
  preferredSite @0 :Text;      # "prod", "dr-local" or "dr-remote"
}

struct ModelDeployed {
  modelId @0 :Text;
  modelDigest @1 :Data;
  sites @2 :List(Text);        # where it is deployed
}

struct PolicyChange {
  name @0 :Text;               # which policy
  documentDigest @1 :Data;     # digest of the policy document now in force
}

enum PrincipalAction {
  added @0;
  removed @1;
  rolesChanged @2;
}

struct PrincipalChange {
  principal @0 :Text;
  action @1 :PrincipalAction;
  roles @2 :List(Text);        # the roles after the change
}

# A second person's approval of an earlier change (four-eyes rule): it names the ticket in
# the enclosing ConfigurationChange and the digest of the change it approves.
struct Approval {
  approver @0 :Text;
  approvedChangeDigest @1 :Data;
  granted @2 :Bool;            # false records a refusal
}

# Committed by a new leader before it reports ready (DESIGN.md §5).
struct EpochStart {
  epoch @0 :UInt64;            # strictly increasing across leaderships
  site @1 :Text;               # "prod", "dr-local" or "dr-remote"
  leaderId @2 :UInt64;         # the Raft server id of the new leader
  term @3 :UInt64;             # its Raft term
}

# The replicator's default state machine (actors/replicator_state.hpp, journal_summary): what
# a Raft snapshot keeps of the log it compacts. It travels as InstallSnapshot data and lives in
# the snapshot file beside the segments, so it is a contract like the records themselves.
# The records before the snapshot are gone from that replica's log; what the rest of Bastion
# still needs from them is here: the leadership epoch in force, the configuration in force,
# and the outcome of recent requests (a retry with a committed request id returns its
# journaled outcome, DESIGN.md §4).
struct JournalSummary {
  appliedIndex @0 :UInt64;                      # the last log index folded in
  epochStartIndex @1 :UInt64;                   # log index of epochStart; 0: none seen yet
  epochStart @2 :EpochStart;
  configuration @3 :List(ConfigurationInForce); # the latest change per subject
  completions @4 :List(CompletedRequest);       # oldest first; bounded, the oldest forgotten
  unreadableRecords @5 :UInt64;                 # command entries that were not JournalRecords
}

struct ConfigurationInForce {
  subject @0 :Text;            # "model:<id>", "policy:<name>", "principal:<name>",
                               # "approval:<ticket>", "leadership"
  index @1 :UInt64;            # log index of the change
  change @2 :ConfigurationChange;
}

struct CompletedRequest {
  requestId @0 :Text;
  index @1 :UInt64;            # log index of its completion record
  outputDigest @2 :Data;
  finishReason @3 :Inference.FinishReason;
  # A request that failed: its error as journaled (code, reason, retry hint; the message cut to
  # journal_summary_limits::error_message_bytes_max) and the field at fault, so a retry of it
  # is refused with the same typed error after compaction too. Unset: it was answered.
  error @4 :Inference.Error;
  errorParam @5 :Text;
}
