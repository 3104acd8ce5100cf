#pragma once
// Reads a byte-level BPE tokenizer from a Hugging Face tokenizer.json. Supported: model.type
// "BPE" (vocab; merges as "a b" strings or ["a", "b"] pairs; ignore_merges; unk_token),
// added_tokens (special -> control, otherwise user-defined), pre_tokenizer ByteLevel, Split
// (Regex or String pattern, behaviour Isolated), Digits, or a Sequence of those, and a
// TemplateProcessing post-processor that starts with a special token (taken as BOS).
// Anything else is refused by name rather than run differently from the reference. One
// documented difference: an NFC normalizer is accepted but not applied (as in llama.cpp), so
// text that is not already NFC may split differently than in Hugging Face.
//
// Built only when nlohmann_json is found; otherwise these return status `unsupported`.

#include "kernels/status.hpp"
#include "kernels/tokenizer/tokenizer_spec.hpp"

#include <string>
#include <string_view>

namespace bastion::kernels::tokenizer {

/// Parses the text of a tokenizer.json into `out`. Every id, merge and option is checked.
status spec_from_tokenizer_json(std::string_view json_text, tokenizer_spec& out,
                                const tokenizer_limits& limits = {});

/// Reads `path` (at most `file_bytes_max`) and parses it as above.
status spec_from_tokenizer_json_file(const std::string& path, tokenizer_spec& out,
                                     std::size_t file_bytes_max = std::size_t{256} << 20,
                                     const tokenizer_limits& limits = {});

/// True when this build has the tokenizer.json loader.
bool tokenizer_json_supported() noexcept;

}  // namespace bastion::kernels::tokenizer
