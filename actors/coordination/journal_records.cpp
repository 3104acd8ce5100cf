#include "actors/coordination/journal_records.hpp"

#include "schemas/journal.capnp.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <openssl/evp.h>

#include <cstring>
#include <memory>
#include <stdexcept>

namespace bastion::coordination {

namespace j = bastion::schema::journal;
namespace s = bastion::schema;

namespace {

capnp::ReaderOptions record_limits() {
  capnp::ReaderOptions o;
  o.traversalLimitInWords = std::uint64_t{1} << 22;  // 32 MiB: a record is far smaller
  o.nestingLimit = 16;
  return o;
}

record_bytes to_bytes(capnp::MallocMessageBuilder& msg) {
  auto words = capnp::messageToFlatArray(msg);
  auto b = words.asBytes();
  return record_bytes(b.begin(), b.end());
}

capnp::Data::Reader data(const std::vector<std::uint8_t>& v) { return {v.data(), v.size()}; }

std::string input_bytes(const gateway::inference_input& in) {
  // The digest covers the input as received, in one canonical flat form per kind.
  if (auto* text = std::get_if<std::string>(&in)) return "prompt\n" + *text;
  std::string out;
  if (auto* chat = std::get_if<std::vector<gateway::chat_message>>(&in)) {
    out = "chat\n";
    for (const auto& m : *chat) out += m.role + '\0' + m.content + '\0';
    return out;
  }
  out = "tokens\n";
  for (auto t : std::get<std::vector<std::uint32_t>>(in)) out += std::to_string(t) + ',';
  return out;
}

// Principal, model and prompt digest, each length-prefixed so no two differ only in where
// one ends.
std::string fingerprint_of(j::Admission::Reader a) {
  std::string out;
  auto put = [&out](kj::ArrayPtr<const kj::byte> bytes) {
    out += std::to_string(bytes.size()) + ':';
    out.append(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
  };
  put(a.getPrincipal().asBytes());
  put(a.getModelId().asBytes());
  put(a.getPromptDigest());
  return out;
}

s::FinishReason to_schema(gateway::finish_reason r) {
  return static_cast<s::FinishReason>(static_cast<std::uint16_t>(r));
}
s::ErrorCode to_schema(gateway::error_code c) {
  return static_cast<s::ErrorCode>(static_cast<std::uint16_t>(c));
}

// A reason a later build added, unknown here, reads as unspecified: the code still holds.
gateway::error_reason from_schema(s::ErrorReason r) {
  const auto raw = static_cast<std::uint16_t>(r);
  return raw == static_cast<std::uint16_t>(gateway::error_reason::prompt_too_long)
             ? gateway::error_reason::prompt_too_long
             : gateway::error_reason::unspecified;
}

// Codes and finish reasons read from a record are checked against this build's enums before
// they become them: a record written by a newer build (or damaged) may hold a value past the
// last one we know, and a cast would make an enum value no switch handles.
std::optional<gateway::error_code> known_code(s::ErrorCode c) {
  const auto raw = static_cast<std::uint16_t>(c);
  if (raw > static_cast<std::uint16_t>(gateway::error_code::cancelled)) return std::nullopt;
  return static_cast<gateway::error_code>(raw);
}
std::optional<gateway::finish_reason> known_finish(s::FinishReason r) {
  const auto raw = static_cast<std::uint16_t>(r);
  if (raw > static_cast<std::uint16_t>(gateway::finish_reason::deadline)) return std::nullopt;
  return static_cast<gateway::finish_reason>(raw);
}

/// A flat record's words, copied so they are aligned for capnp.
std::unique_ptr<capnp::FlatArrayMessageReader> reader_for(const record_bytes& bytes,
                                                          kj::Array<capnp::word>& words) {
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0) return nullptr;
  words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  return std::make_unique<capnp::FlatArrayMessageReader>(words.asPtr(), record_limits());
}

}  // namespace

std::vector<std::uint8_t> sm3_digest(const std::string& data) {
  std::vector<std::uint8_t> out(32);
  unsigned int len = 0;
  const EVP_MD* md = EVP_sm3();
  // SM3 is in OpenSSL 3.0's default provider (shared/notes/security.md): a failure is a bug
  // in the build, not an input error.
  if (!md || EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr) != 1 || len != 32)
    throw std::runtime_error("SM3 is not available from OpenSSL");
  return out;
}

record_bytes encode_epoch_start(const epoch_start_record& r, std::uint64_t now_unix_ns) {
  capnp::MallocMessageBuilder msg;
  auto rec = msg.initRoot<j::JournalRecord>();
  rec.setProposedAtNs(now_unix_ns);
  auto e = rec.initEpochStart();
  e.setEpoch(r.epoch);
  e.setSite(r.site);
  e.setLeaderId(r.leader_id);
  e.setTerm(r.term);
  return to_bytes(msg);
}

record_bytes encode_admission(const gateway::inference_request& req, std::uint64_t now_unix_ns) {
  capnp::MallocMessageBuilder msg;
  auto rec = msg.initRoot<j::JournalRecord>();
  rec.setProposedAtNs(now_unix_ns);
  auto a = rec.initAdmission();
  a.setRequestId(req.request_id);
  a.setPrincipal(req.principal);
  a.setDecision(j::Decision::ALLOW);
  a.setModelId(req.model);
  auto p = a.initParams();
  p.setMaxTokens(req.params.max_tokens);
  p.setTemperature(req.params.temperature);
  p.setTopK(req.params.top_k);
  p.setTopP(req.params.top_p);
  p.setRepetitionPenalty(req.params.repetition_penalty);
  p.setSeed(req.params.seed);
  p.setPriority(static_cast<s::Priority>(static_cast<std::uint16_t>(req.priority)));
  a.setPromptDigest(data(sm3_digest(input_bytes(req.input))));
  return to_bytes(msg);
}

record_bytes encode_completion(const std::string& request_id, const gateway::completion& outcome,
                               const completion_options& opt, std::uint64_t now_unix_ns) {
  capnp::MallocMessageBuilder msg;
  auto rec = msg.initRoot<j::JournalRecord>();
  rec.setProposedAtNs(now_unix_ns);
  auto c = rec.initCompletion();
  c.setRequestId(request_id);
  c.setSite(opt.site);
  c.setEpoch(opt.epoch);
  if (auto* f = std::get_if<gateway::final_result>(&outcome)) {
    c.setOutputDigest(data(sm3_digest(f->text)));
    if (opt.retain_text) c.setOutputText(f->text);
    c.setFinishReason(to_schema(f->reason));
    c.initUsage().setPromptTokens(f->usage.prompt_tokens);
    c.getUsage().setCompletionTokens(f->usage.completion_tokens);
    c.setModelId(f->served_model);
  } else {
    const auto& e = std::get<gateway::inference_error>(outcome);
    auto err = c.initError();
    err.setCode(to_schema(e.code));
    err.setMessage(e.message);
    err.setRequestId(request_id);
    err.setRetryAfterMs(e.retry_after_ms);
    // The typed reason and the field at fault, so a retry is refused in the same terms (a
    // prompt too long stays OpenAI's context_length_exceeded on "prompt" or "messages").
    err.setReason(static_cast<s::ErrorReason>(gateway::typed_reason(e.reason)));
    if (!e.param.empty()) c.setErrorParam(e.param);
  }
  return to_bytes(msg);
}

record_bytes encode_leadership_preference(const std::string& site, const std::string& changed_by,
                                          std::uint64_t now_unix_ns) {
  capnp::MallocMessageBuilder msg;
  auto rec = msg.initRoot<j::JournalRecord>();
  rec.setProposedAtNs(now_unix_ns);
  auto c = rec.initConfigurationChange();
  c.setChangedBy(changed_by);
  c.initLeadership().setPreferredSite(site);
  return to_bytes(msg);
}

std::string admission_fingerprint(const record_bytes& admission) {
  kj::Array<capnp::word> words;
  auto reader = reader_for(admission, words);
  if (!reader) return {};
  std::string out;
  auto caught = kj::runCatchingExceptions([&] {
    auto rec = reader->getRoot<j::JournalRecord>();
    if (rec.isAdmission()) out = fingerprint_of(rec.getAdmission());
  });
  // A record capnp cannot read has no fingerprint: nothing to compare a retry with.
  return caught == nullptr ? out : std::string{};
}

std::variant<committed_record, std::string> decode_record(const record_bytes& bytes) {
  kj::Array<capnp::word> words;
  auto reader = reader_for(bytes, words);
  if (!reader)
    return "journal entry of " + std::to_string(bytes.size()) +
           " bytes is not a whole number of 8-byte words";
  std::string failure;
  committed_record out = committed_other{};
  auto caught = kj::runCatchingExceptions([&] {
    auto rec = reader->getRoot<j::JournalRecord>();
    switch (rec.which()) {
      case j::JournalRecord::EPOCH_START: {
        auto e = rec.getEpochStart();
        out =
            committed_epoch_start{{e.getEpoch(), e.getSite().cStr(), e.getLeaderId(), e.getTerm()}};
        break;
      }
      case j::JournalRecord::ADMISSION:
        out = committed_admission{rec.getAdmission().getRequestId().cStr(),
                                  fingerprint_of(rec.getAdmission())};
        break;
      case j::JournalRecord::COMPLETION:
        out = committed_completion{rec.getCompletion().getRequestId().cStr()};
        break;
      case j::JournalRecord::CONFIGURATION_CHANGE: {
        auto c = rec.getConfigurationChange();
        if (c.isLeadership())
          out = committed_leadership{c.getLeadership().getPreferredSite().cStr()};
        break;
      }
      default:
        break;
    }
  });
  KJ_IF_MAYBE (e, caught) {
    failure = e->getDescription().cStr();
  }
  if (!failure.empty()) return "journal entry is not a valid JournalRecord: " + failure;
  return out;
}

bool completion_is_cancellation(const record_bytes& completion) {
  const auto outcome = outcome_of_completion(completion);
  if (const auto* f = std::get_if<gateway::final_result>(&outcome))
    return f->reason == gateway::finish_reason::cancelled;
  return std::get<gateway::inference_error>(outcome).code == gateway::error_code::cancelled;
}

gateway::completion outcome_of_completion(const record_bytes& bytes) {
  kj::Array<capnp::word> words;
  auto reader = reader_for(bytes, words);
  gateway::inference_error bad{gateway::error_code::internal,
                               "the journaled outcome of this request cannot be read",
                               {},
                               0,
                               {}};
  if (!reader) return bad;
  gateway::completion out = bad;
  auto caught = kj::runCatchingExceptions([&] {
    auto c = reader->getRoot<j::JournalRecord>().getCompletion();
    if (c.hasError()) {
      auto e = c.getError();
      const auto code = known_code(e.getCode());
      std::string message = e.getMessage().cStr();
      // An unknown code reads as internal, the journaled value named: the client still gets
      // the error, with the message it was first given, as one it can act on.
      if (!code)
        message += " (journaled error code " +
                   std::to_string(static_cast<std::uint16_t>(e.getCode())) +
                   " is unknown to this build; reported as internal)";
      gateway::inference_error err{code.value_or(gateway::error_code::internal),
                                   std::move(message),
                                   c.getRequestId().cStr(),
                                   e.getRetryAfterMs(),
                                   {},
                                   c.getErrorParam().cStr()};
      err.reason = gateway::reason_text(from_schema(e.getReason()));
      out = std::move(err);
      return;
    }
    if (!c.hasOutputText() && !c.hasSite()) {
      // journal_summary::covered_records: the entry itself was compacted into a snapshot,
      // which keeps the digest, never the text.
      out = gateway::inference_error{
          gateway::error_code::invalid_argument,
          "request '" + std::string{c.getRequestId().cStr()} +
              "' already completed; its record was compacted into a journal snapshot that "
              "keeps only the output digest, so the answer cannot be sent again",
          c.getRequestId().cStr(),
          0,
          {}};
      return;
    }
    if (!c.hasOutputText() && c.getUsage().getCompletionTokens() > 0) {
      out = gateway::inference_error{
          gateway::error_code::invalid_argument,
          "request '" + std::string{c.getRequestId().cStr()} +
              "' already completed; its level keeps only the output digest, so the answer "
              "cannot be sent again",
          c.getRequestId().cStr(),
          0,
          {}};
      return;
    }
    const auto finish = known_finish(c.getFinishReason());
    if (!finish) {
      // No finish reason of ours says how this answer ended, and the front ends must name
      // one: refuse it clearly rather than guess.
      out = gateway::inference_error{
          gateway::error_code::internal,
          "request '" + std::string{c.getRequestId().cStr()} +
              "' completed with journaled finish reason " +
              std::to_string(static_cast<std::uint16_t>(c.getFinishReason())) +
              ", unknown to this build; its answer cannot be sent by it",
          c.getRequestId().cStr(),
          0,
          {}};
      return;
    }
    gateway::final_result f;
    f.text = c.getOutputText().cStr();
    f.reason = *finish;
    f.usage.prompt_tokens = c.getUsage().getPromptTokens();
    f.usage.completion_tokens = c.getUsage().getCompletionTokens();
    f.served_model = c.getModelId().cStr();
    f.site = c.getSite().cStr();
    f.epoch = c.getEpoch();
    out = f;
  });
  if (caught != nullptr) return bad;
  return out;
}

}  // namespace bastion::coordination
