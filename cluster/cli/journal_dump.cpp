#include "cluster/cli/journal_dump.hpp"

#include "actors/coordination/journal_records.hpp"
#include "actors/gateway/inference_port.hpp"
#include "runtime/journal/errors.hpp"
#include "runtime/journal/file_ops.hpp"
#include "runtime/journal/file_store.hpp"
#include "schemas/journal.capnp.h"

#include <capnp/dynamic.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <ostream>

namespace bastion::cli {

namespace {

using json = nlohmann::json;
namespace j = bastion::schema::journal;

std::string hex(capnp::Data::Reader d) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (auto b : d) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

/// The typed reason under a journaled error, by its metric label ("prompt_too_long"); a value
/// a newer build wrote shows its number. Empty: unspecified.
std::string reason_name(bastion::schema::ErrorReason r) {
  const auto raw = static_cast<std::uint16_t>(r);
  if (raw == static_cast<std::uint16_t>(gateway::error_reason::unspecified)) return {};
  if (raw == static_cast<std::uint16_t>(gateway::error_reason::prompt_too_long))
    return gateway::reason_text(gateway::error_reason::prompt_too_long);
  return "unknown (" + std::to_string(raw) + ")";
}

/// A journaled error code by its schema name ("invalidArgument"); a value a newer build wrote
/// shows its number.
std::string code_name(bastion::schema::ErrorCode c) {
  const auto raw = static_cast<std::uint16_t>(c);
  KJ_IF_MAYBE (known,
               capnp::DynamicEnum(capnp::Schema::from<bastion::schema::ErrorCode>(), raw)
                   .getEnumerant())
    return known->getProto().getName().cStr();
  return "unknown (" + std::to_string(raw) + ")";
}

/// A journaled error's code and message, and its typed reason and field at fault when it has
/// them (keys error_code, error, error_reason, error_param), as a completion record or a
/// snapshot keeps them.
void describe_error(bastion::schema::Error::Reader e, capnp::Text::Reader param, json& out) {
  out["error_code"] = code_name(e.getCode());
  out["error"] = e.getMessage().cStr();
  if (auto reason = reason_name(e.getReason()); !reason.empty()) out["error_reason"] = reason;
  if (param.size() > 0) out["error_param"] = param.cStr();
}

/// Reads a capnp message from bytes under the journal's own limits.
template <class Fn>
std::string with_message(const std::vector<std::uint8_t>& bytes, Fn&& fn) {
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0) return "not whole words";
  auto words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  capnp::ReaderOptions opts;
  opts.traversalLimitInWords = bytes.size();  // a record is read once
  opts.nestingLimit = 16;
  std::string failure;
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&] {
                 capnp::FlatArrayMessageReader reader(words.asPtr(), opts);
                 fn(reader);
               })) {
    failure = e->getDescription().cStr();
  }
  return failure;
}

json describe_record(const std::vector<std::uint8_t>& payload) {
  json out;
  auto failure = with_message(payload, [&](capnp::MessageReader& reader) {
    auto rec = reader.getRoot<j::JournalRecord>();
    out["proposed_at_ns"] = rec.getProposedAtNs();
    switch (rec.which()) {
      case j::JournalRecord::ADMISSION: {
        auto a = rec.getAdmission();
        out["kind"] = "admission";
        out["request_id"] = a.getRequestId().cStr();
        out["principal"] = a.getPrincipal().cStr();
        out["model"] = a.getModelId().cStr();
        out["prompt_digest"] = hex(a.getPromptDigest());
        break;
      }
      case j::JournalRecord::COMPLETION: {
        auto c = rec.getCompletion();
        out["kind"] = "completion";
        out["request_id"] = c.getRequestId().cStr();
        out["site"] = c.getSite().cStr();
        out["epoch"] = c.getEpoch();
        // A cancellation does not end the id: a retry runs again (release_gate.hpp).
        out["cancelled"] = c.hasError()
                               ? c.getError().getCode() == bastion::schema::ErrorCode::CANCELLED
                               : c.getFinishReason() == bastion::schema::FinishReason::CANCELLED;
        if (c.hasError()) {
          describe_error(c.getError(), c.getErrorParam(), out);
        } else {
          out["digest"] = hex(c.getOutputDigest());
          out["completion_tokens"] = c.getUsage().getCompletionTokens();
        }
        break;
      }
      case j::JournalRecord::EPOCH_START: {
        auto e = rec.getEpochStart();
        out["kind"] = "epoch_start";
        out["epoch"] = e.getEpoch();
        out["site"] = e.getSite().cStr();
        out["leader_id"] = e.getLeaderId();
        break;
      }
      case j::JournalRecord::CONFIGURATION_CHANGE: {
        auto c = rec.getConfigurationChange();
        out["kind"] = "configuration_change";
        out["changed_by"] = c.getChangedBy().cStr();
        if (c.isLeadership()) out["preferred_site"] = c.getLeadership().getPreferredSite().cStr();
        break;
      }
    }
  });
  if (!failure.empty()) out = {{"kind", "unreadable"}, {"why", failure}};
  return out;
}

json describe_snapshot(const journal::snapshot& snap) {
  json out = {{"kind", "snapshot"}, {"index", snap.index}, {"term", snap.term}};
  json completions = json::array();
  auto failure = with_message(snap.data, [&](capnp::MessageReader& reader) {
    auto s = reader.getRoot<j::JournalSummary>();
    out["epoch"] = s.getEpochStart().getEpoch();
    out["epoch_site"] = s.getEpochStart().getSite().cStr();
    for (auto c : s.getCompletions()) {
      json line = {{"request_id", c.getRequestId().cStr()},
                   {"index", c.getIndex()},
                   {"digest", hex(c.getOutputDigest())}};
      if (c.hasError()) describe_error(c.getError(), c.getErrorParam(), line);
      completions.push_back(std::move(line));
    }
  });
  if (!failure.empty()) out["unreadable"] = failure;
  out["completions"] = std::move(completions);
  return out;
}

}  // namespace

int dump_journal(const std::string& directory, std::ostream& out, std::ostream& err) {
  journal::file_store store(
      directory, journal::file_store_options{}, std::make_shared<journal::posix_file_ops>(),
      [&err](const std::string& line) { err << "journal: " << line << "\n"; });
  auto loaded = store.load();
  if (!loaded) {
    err << "bastion journal: cannot read '" << directory << "': "
        << journal::render_journal_error(loaded.error().code(), loaded.error().category(),
                                         loaded.error().context())
        << "\n";
    return 1;
  }
  out << json{{"kind", "hard_state"},
              {"term", loaded->hard.term},
              {"voted_for", loaded->hard.voted_for},
              {"start_index", loaded->start_index},
              {"entries", loaded->entries.size()}}
             .dump()
      << "\n";
  if (loaded->snap) out << describe_snapshot(*loaded->snap).dump() << "\n";
  for (std::size_t i = 0; i < loaded->entries.size(); ++i) {
    const auto& e = loaded->entries[i];
    json line;
    // libraft's entry types: 1 command, 2 barrier, 3 configuration change.
    if (e.type == 1)
      line = describe_record(e.payload);
    else
      line = {{"kind", e.type == 3 ? "raft_configuration" : "raft_barrier"}};
    line["index"] = loaded->start_index + i;
    line["term"] = e.term;
    out << line.dump() << "\n";
  }
  return 0;
}

}  // namespace bastion::cli
