#pragma once
// The records the coordinator writes to the replicated journal (schemas/journal.capnp), built
// from the serving port's types, and read back from committed entries under explicit limits.
// Prompts and outputs are digested with SM3 (GB/T 32905) before they are written.

#include "actors/gateway/inference_port.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace bastion::coordination {

using record_bytes = std::vector<std::uint8_t>;

/// SM3 of `data` (32 bytes), through OpenSSL's EVP interface.
std::vector<std::uint8_t> sm3_digest(const std::string& data);

struct epoch_start_record {
  std::uint64_t epoch = 0;
  std::string site;
  std::uint64_t leader_id = 0;
  std::uint64_t term = 0;
};

record_bytes encode_epoch_start(const epoch_start_record& r, std::uint64_t now_unix_ns);

/// The admission record of `req`: principal, model, parameters, the SM3 digest of the input
/// (never its text).
record_bytes encode_admission(const gateway::inference_request& req, std::uint64_t now_unix_ns);

struct completion_options {
  bool retain_text = true;  // false: only the output's digest is journaled
  std::string site;
  std::uint64_t epoch = 0;
};

/// The completion record of a request that ended with `outcome` (an answer or an error).
record_bytes encode_completion(const std::string& request_id, const gateway::completion& outcome,
                               const completion_options& opt, std::uint64_t now_unix_ns);

/// The switchover record: `site` leads whenever it has caught up, until another preference.
record_bytes encode_leadership_preference(const std::string& site, const std::string& changed_by,
                                          std::uint64_t now_unix_ns);

/// What a committed entry says, as far as the coordinator cares.
struct committed_epoch_start {
  epoch_start_record record;
};
struct committed_admission {
  std::string request_id;
  std::string fingerprint;  // admission_fingerprint's value for this record
};
struct committed_completion {
  std::string request_id;
};
struct committed_leadership {
  std::string preferred_site;
};
struct committed_other {};  // configuration changes and kinds this build does not know
using committed_record = std::variant<committed_epoch_start, committed_admission,
                                      committed_completion, committed_leadership, committed_other>;

/// What identifies the request behind an admission record's id: its principal, model and
/// prompt digest, as one opaque string (equal for a true retry). Empty when `admission` is
/// not a readable admission record.
std::string admission_fingerprint(const record_bytes& admission);

/// Reads a committed entry; an entry that is not a valid JournalRecord is an error message.
std::variant<committed_record, std::string> decode_record(const record_bytes& bytes);

/// True when a completion record holds a cancellation (finish reason cancelled, or the error
/// code cancelled): the request's client went away or a drain ended it, so a retry runs again.
bool completion_is_cancellation(const record_bytes& completion);

/// The outcome a completion record holds, for a retry with its request id: the answer (its
/// text when retained; otherwise a typed error saying only the digest was kept) or its error,
/// with its code, message, retry hint, typed reason and field at fault as first given.
/// Values this build does not know (a newer build's record, or a damaged one) are never cast
/// into our enums: an unknown error code reads as `internal`, its message ending with the
/// journaled value; an unknown typed reason as unspecified (the code still holds); an answer
/// with an unknown finish reason as an `internal` error naming the value.
gateway::completion outcome_of_completion(const record_bytes& bytes);

}  // namespace bastion::coordination
