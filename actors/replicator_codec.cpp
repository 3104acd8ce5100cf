#include "actors/replicator_codec.hpp"

#include "schemas/raft.capnp.h"

#include <capnp/message.h>

#include <cstring>
#include <string>

namespace bastion::actors::raft_codec {

namespace {

schema::Tribool to_tribool(raft_tribool t) {
  switch (t) {
    case raft_tribool_true:
      return schema::Tribool::YES;
    case raft_tribool_false:
      return schema::Tribool::NO;
    case raft_tribool_unknown:
      break;
  }
  return schema::Tribool::UNKNOWN;
}

raft_tribool from_tribool(schema::Tribool t) {
  switch (t) {
    case schema::Tribool::YES:
      return raft_tribool_true;
    case schema::Tribool::NO:
      return raft_tribool_false;
    case schema::Tribool::UNKNOWN:
      break;
  }
  return raft_tribool_unknown;
}

capnp::Data::Reader bytes_of(const raft_buffer& buf) {
  return capnp::Data::Reader{static_cast<const capnp::byte*>(buf.base), buf.len};
}

caf::error malformed(std::string what) {
  return wire::make_error(wire::wire_errc::malformed_message, "raft message: " + std::move(what));
}

// libraft's allocator never returns a usable pointer for zero bytes on every platform; one
// byte keeps "allocated" and "empty" distinct.
void* raft_bytes(std::size_t n) { return raft_malloc(n == 0 ? 1 : n); }

}  // namespace

wire::frame encode(const raft_message& msg, raft_id sender_id, const std::string& sender_address) {
  capnp::MallocMessageBuilder builder;
  auto root = builder.initRoot<schema::RaftMessage>();
  root.setSenderId(sender_id);
  root.setSenderAddress(sender_address);
  root.setReceiverId(msg.server_id);
  switch (msg.type) {
    case RAFT_IO_REQUEST_VOTE: {
      const auto& in = msg.request_vote;
      auto out = root.initRequestVote();
      out.setTerm(in.term);
      out.setCandidateId(in.candidate_id);
      out.setLastLogIndex(in.last_log_index);
      out.setLastLogTerm(in.last_log_term);
      out.setDisruptLeader(in.disrupt_leader);
      out.setPreVote(in.pre_vote);
      break;
    }
    case RAFT_IO_REQUEST_VOTE_RESULT: {
      const auto& in = msg.request_vote_result;
      auto out = root.initRequestVoteResult();
      out.setTerm(in.term);
      out.setVoteGranted(in.vote_granted);
      out.setPreVote(to_tribool(in.pre_vote));
      break;
    }
    case RAFT_IO_APPEND_ENTRIES: {
      const auto& in = msg.append_entries;
      auto out = root.initAppendEntries();
      out.setTerm(in.term);
      out.setPrevLogIndex(in.prev_log_index);
      out.setPrevLogTerm(in.prev_log_term);
      out.setLeaderCommit(in.leader_commit);
      auto entries = out.initEntries(in.n_entries);
      for (unsigned i = 0; i < in.n_entries; ++i) {
        entries[i].setTerm(in.entries[i].term);
        entries[i].setType(static_cast<std::uint8_t>(in.entries[i].type));
        entries[i].setPayload(bytes_of(in.entries[i].buf));
      }
      break;
    }
    case RAFT_IO_APPEND_ENTRIES_RESULT: {
      const auto& in = msg.append_entries_result;
      auto out = root.initAppendEntriesResult();
      out.setTerm(in.term);
      out.setRejected(in.rejected);
      out.setLastLogIndex(in.last_log_index);
      break;
    }
    case RAFT_IO_INSTALL_SNAPSHOT: {
      const auto& in = msg.install_snapshot;
      auto out = root.initInstallSnapshot();
      out.setTerm(in.term);
      out.setLastIndex(in.last_index);
      out.setLastTerm(in.last_term);
      auto servers = out.initConfiguration(in.conf.n);
      for (unsigned i = 0; i < in.conf.n; ++i) {
        servers[i].setId(in.conf.servers[i].id);
        servers[i].setAddress(in.conf.servers[i].address);
        servers[i].setRole(static_cast<std::uint8_t>(in.conf.servers[i].role));
      }
      out.setConfigurationIndex(in.conf_index);
      out.setData(bytes_of(in.data));
      break;
    }
    case RAFT_IO_TIMEOUT_NOW: {
      const auto& in = msg.timeout_now;
      auto out = root.initTimeoutNow();
      out.setTerm(in.term);
      out.setLastLogIndex(in.last_log_index);
      out.setLastLogTerm(in.last_log_term);
      break;
    }
    default:
      // libraft only sends the types above; anything else is a libraft/Bastion mismatch.
      KJ_FAIL_ASSERT("libraft asked to send an unknown message type", msg.type);
  }
  return wire::make_frame(wire::frame_kind::raft_message, builder);
}

decoded_message::decoded_message() { std::memset(&message_, 0, sizeof message_); }

decoded_message::~decoded_message() {
  if (!owned_) return;
  switch (message_.type) {
    case RAFT_IO_APPEND_ENTRIES:
      if (message_.append_entries.entries != nullptr) {
        raft_free(message_.append_entries.entries[0].batch);
        raft_free(message_.append_entries.entries);
      }
      break;
    case RAFT_IO_INSTALL_SNAPSHOT:
      raft_configuration_close(&message_.install_snapshot.conf);
      raft_free(message_.install_snapshot.data.base);
      break;
    default:
      break;
  }
}

caf::expected<std::unique_ptr<decoded_message>> decode(const wire::frame& f,
                                                       const wire::limits& lim) {
  auto view = wire::open_frame(f, wire::frame_kind::raft_message, lim);
  if (!view) return std::move(view.error());
  // open_frame walked the whole message against the schema: typed reads below cannot throw.
  auto root = (*view)->root<schema::RaftMessage>();
  auto out = std::make_unique<decoded_message>();
  auto& m = out->message_;
  if (root.getSenderId() == 0) return malformed("sender id 0 is not a valid libraft id");
  out->sender_address_ = root.getSenderAddress().cStr();
  m.server_id = root.getSenderId();
  m.server_address = out->sender_address_.c_str();
  out->receiver_id_ = root.getReceiverId();
  switch (root.which()) {
    case schema::RaftMessage::REQUEST_VOTE: {
      auto in = root.getRequestVote();
      m.type = RAFT_IO_REQUEST_VOTE;
      m.request_vote.term = in.getTerm();
      m.request_vote.candidate_id = in.getCandidateId();
      m.request_vote.last_log_index = in.getLastLogIndex();
      m.request_vote.last_log_term = in.getLastLogTerm();
      m.request_vote.disrupt_leader = in.getDisruptLeader();
      m.request_vote.pre_vote = in.getPreVote();
      break;
    }
    case schema::RaftMessage::REQUEST_VOTE_RESULT: {
      auto in = root.getRequestVoteResult();
      m.type = RAFT_IO_REQUEST_VOTE_RESULT;
      m.request_vote_result.term = in.getTerm();
      m.request_vote_result.vote_granted = in.getVoteGranted();
      m.request_vote_result.pre_vote = from_tribool(in.getPreVote());
      break;
    }
    case schema::RaftMessage::APPEND_ENTRIES: {
      auto in = root.getAppendEntries();
      auto entries = in.getEntries();
      m.type = RAFT_IO_APPEND_ENTRIES;
      m.append_entries.term = in.getTerm();
      m.append_entries.prev_log_index = in.getPrevLogIndex();
      m.append_entries.prev_log_term = in.getPrevLogTerm();
      m.append_entries.leader_commit = in.getLeaderCommit();
      m.append_entries.entries = nullptr;
      m.append_entries.n_entries = 0;
      if (entries.size() == 0) break;
      std::size_t total = 0;
      for (auto e : entries) {
        if (e.getType() < RAFT_COMMAND || e.getType() > RAFT_CHANGE)
          return malformed("entry type " + std::to_string(e.getType()) + " is not libraft's");
        if (e.getTerm() == 0) return malformed("entry with term 0");
        total += e.getPayload().size();
      }
      // One batch for all payloads, as libraft expects of received entries: it frees the
      // batch once no entry refers to it any more.
      auto* array = static_cast<raft_entry*>(raft_calloc(entries.size(), sizeof(raft_entry)));
      auto* batch = static_cast<std::uint8_t*>(raft_bytes(total));
      if (array == nullptr || batch == nullptr) {
        raft_free(array);
        raft_free(batch);
        return wire::make_error(
            wire::wire_errc::payload_too_large,
            "raft message: cannot allocate " + std::to_string(total) + " bytes for its entries");
      }
      std::size_t offset = 0;
      for (unsigned i = 0; i < entries.size(); ++i) {
        auto payload = entries[i].getPayload();
        array[i].term = entries[i].getTerm();
        array[i].type = entries[i].getType();
        array[i].buf.base = batch + offset;
        array[i].buf.len = payload.size();
        array[i].batch = batch;
        if (payload.size() > 0) std::memcpy(batch + offset, payload.begin(), payload.size());
        offset += payload.size();
      }
      m.append_entries.entries = array;
      m.append_entries.n_entries = entries.size();
      break;
    }
    case schema::RaftMessage::APPEND_ENTRIES_RESULT: {
      auto in = root.getAppendEntriesResult();
      m.type = RAFT_IO_APPEND_ENTRIES_RESULT;
      m.append_entries_result.term = in.getTerm();
      m.append_entries_result.rejected = in.getRejected();
      m.append_entries_result.last_log_index = in.getLastLogIndex();
      break;
    }
    case schema::RaftMessage::INSTALL_SNAPSHOT: {
      auto in = root.getInstallSnapshot();
      m.type = RAFT_IO_INSTALL_SNAPSHOT;
      auto& s = m.install_snapshot;
      s.term = in.getTerm();
      s.last_index = in.getLastIndex();
      s.last_term = in.getLastTerm();
      s.conf_index = in.getConfigurationIndex();
      raft_configuration_init(&s.conf);
      s.data.base = nullptr;
      s.data.len = 0;
      for (auto server : in.getConfiguration()) {
        const int role = server.getRole();
        if (role != RAFT_STANDBY && role != RAFT_VOTER && role != RAFT_SPARE)
          return malformed("server role " + std::to_string(role) + " is not libraft's");
        if (int rv =
                raft_configuration_add(&s.conf, server.getId(), server.getAddress().cStr(), role);
            rv != 0)
          return malformed(std::string{"snapshot configuration refused: "} + raft_strerror(rv));
      }
      auto data = in.getData();
      s.data.base = raft_bytes(data.size());
      if (s.data.base == nullptr)
        return wire::make_error(wire::wire_errc::payload_too_large,
                                "raft message: cannot allocate the snapshot");
      s.data.len = data.size();
      if (data.size() > 0) std::memcpy(s.data.base, data.begin(), data.size());
      break;
    }
    case schema::RaftMessage::TIMEOUT_NOW: {
      auto in = root.getTimeoutNow();
      m.type = RAFT_IO_TIMEOUT_NOW;
      m.timeout_now.term = in.getTerm();
      m.timeout_now.last_log_index = in.getLastLogIndex();
      m.timeout_now.last_log_term = in.getLastLogTerm();
      break;
    }
    default:
      return malformed("message kind unknown to this build (a newer sender?)");
  }
  return out;
}

}  // namespace bastion::actors::raft_codec
