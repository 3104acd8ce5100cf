#pragma once
// What a byte-level BPE tokenizer is made of, as a loader (GGUF metadata, Hugging Face
// tokenizer.json) found it. Nothing here is trusted: bpe_tokenizer::create validates it all.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bastion::kernels::tokenizer {

using token_id = std::int32_t;

/// Token kinds, numbered as GGUF `tokenizer.ggml.token_type` numbers them.
enum class token_kind : std::uint8_t {
  normal = 1,        // a BPE token, spelled in the byte-level alphabet
  unknown = 2,       // the unknown token; treated like a control token
  control = 3,       // special: recognised in text only on request, rendered only on request
  user_defined = 4,  // an added token: always recognised in text, its text is literal
  unused = 5,        // never produced by encoding, decodes to nothing
  byte = 6,          // treated like normal
};

/// What encoding does with a byte whose single-byte token the vocabulary lacks (SmolLM2 has
/// none for 21 bytes, e.g. 0x04 and 0xFF). The references differ, so each loader picks its
/// reference's behaviour; decode(encode(x)) loses such bytes either way.
enum class missing_byte_policy : std::uint8_t {
  barrier,  // llama.cpp: stays in the word (nothing merges across it), then produces no token
  skip,     // Hugging Face BPE without unk_token: removed before merging
  unknown,  // Hugging Face BPE with unk_token: becomes the unknown token
};

struct tokenizer_spec {
  std::vector<std::string> tokens;  // id -> text (byte-level spelling, or literal for added)
  std::vector<token_kind> kinds;    // id -> kind; empty means every token is normal
  std::vector<std::pair<std::string, std::string>> merges;  // by rank, the first merges first

  // The pre-tokenizer: a preset name (GGUF `tokenizer.ggml.pre`), or explicit patterns
  // (a tokenizer.json pre_tokenizer section), which then win and `pre_name` only labels them.
  std::string pre_name = "gpt2";
  std::vector<std::string> pre_patterns;
  bool use_pre_patterns = false;

  bool ignore_merges = false;  // a piece that is a whole token skips the merges
  bool add_bos = false;        // the default for encode's add_bos in callers that follow it

  std::optional<token_id> bos, eos, eot, eom, unk, pad;
  missing_byte_policy missing_bytes = missing_byte_policy::barrier;
  std::string chat_template;  // the model's Jinja template text, possibly empty
};

/// Bounds on what a loader may hand over and on what encode accepts.
struct tokenizer_limits {
  std::size_t tokens_max = std::size_t{1} << 22;  // 4M; real vocabularies are < 300k
  std::size_t merges_max = std::size_t{1} << 22;
  std::size_t token_bytes_max = std::size_t{1} << 16;  // one token's text
  std::size_t text_bytes_max = std::size_t{64} << 20;  // one encode call's input
};

}  // namespace bastion::kernels::tokenizer
