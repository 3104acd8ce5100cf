@0xc78f39533b5881bf;
# Raft messages between the replicators of the three sites (DESIGN.md §5). Each is one
# libraft `struct raft_message`, carried inside a wire::frame of kind raft_message. libraft
# decides what they mean; this file only says how they travel. Field numbers are forever:
# add fields at the end, never renumber.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("bastion::schema");

struct RaftMessage {
  senderId @0 :UInt64;         # libraft server id of the sender (> 0)
  senderAddress @1 :Text;      # its address as written in the Raft configuration
  receiverId @2 :UInt64;       # whom the sender meant; a replicator drops frames for others
  union {
    requestVote @3 :RequestVote;
    requestVoteResult @4 :RequestVoteResult;
    appendEntries @5 :AppendEntries;
    appendEntriesResult @6 :AppendEntriesResult;
    installSnapshot @7 :InstallSnapshot;
    timeoutNow @8 :TimeoutNow;
  }
}

struct RequestVote {
  term @0 :UInt64;
  candidateId @1 :UInt64;
  lastLogIndex @2 :UInt64;
  lastLogTerm @3 :UInt64;
  disruptLeader @4 :Bool;      # set during a leadership transfer
  preVote @5 :Bool;
}

enum Tribool {
  unknown @0;
  yes @1;
  no @2;
}

struct RequestVoteResult {
  term @0 :UInt64;
  voteGranted @1 :Bool;
  preVote @2 :Tribool;         # answer to a pre-vote request, or unknown from old senders
}

struct Entry {
  term @0 :UInt64;
  type @1 :UInt8;              # libraft's RAFT_COMMAND, RAFT_BARRIER or RAFT_CHANGE
  payload @2 :Data;
}

struct AppendEntries {
  term @0 :UInt64;
  prevLogIndex @1 :UInt64;
  prevLogTerm @2 :UInt64;
  leaderCommit @3 :UInt64;
  entries @4 :List(Entry);     # empty for a heartbeat
}

struct AppendEntriesResult {
  term @0 :UInt64;
  rejected @1 :UInt64;         # 0: accepted; otherwise the index refused
  lastLogIndex @2 :UInt64;
}

struct Server {
  id @0 :UInt64;
  address @1 :Text;
  role @2 :UInt8;              # libraft's RAFT_STANDBY, RAFT_VOTER or RAFT_SPARE
}

struct InstallSnapshot {
  term @0 :UInt64;
  lastIndex @1 :UInt64;
  lastTerm @2 :UInt64;
  configuration @3 :List(Server);
  configurationIndex @4 :UInt64;
  data @5 :Data;
}

struct TimeoutNow {
  term @0 :UInt64;
  lastLogIndex @1 :UInt64;
  lastLogTerm @2 :UInt64;
}
