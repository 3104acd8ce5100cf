#pragma once
// `bastion journal`: a replica's journal read offline (the node stopped), one JSON object per
// line, for operators and for the Jepsen-style check of the three-site tests. What a snapshot
// compacted away is shown as the snapshot's summary (the completions it still remembers).
// A failed request's completion shows its error message (`error`) and, when journaled, its
// typed reason (`error_reason`, e.g. "prompt_too_long") and the request field at fault
// (`error_param`, e.g. "input"), in the records and in the snapshot's completions alike.

#include <iosfwd>
#include <string>

namespace bastion::cli {

/// Prints the journal in `directory`; returns 0, or 1 after printing why it cannot be read
/// (for example: locked by a running node) to `err`.
int dump_journal(const std::string& directory, std::ostream& out, std::ostream& err);

}  // namespace bastion::cli
