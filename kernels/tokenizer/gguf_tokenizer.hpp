#pragma once
// Reads a byte-level BPE tokenizer from GGUF metadata (the `tokenizer.ggml.*` keys that
// llama.cpp's converter writes): tokenizer.ggml.model must be "gpt2"; tokens, token_type,
// merges ("left right"), pre, the special ids, add_bos_token and tokenizer.chat_template.
// Every value is checked; a status names the key and what was wrong with it.

#include "kernels/model/gguf_file.hpp"
#include "kernels/status.hpp"
#include "kernels/tokenizer/bpe_tokenizer.hpp"
#include "kernels/tokenizer/tokenizer_spec.hpp"

#include <memory>

namespace bastion::kernels::tokenizer {

/// Fills `out` from the metadata of `file`. A GGUF without tokenizer.ggml.pre gets the
/// "gpt2" pre-tokenizer. add_bos: tokenizer.ggml.add_bos_token when present, otherwise the
/// pre-tokenizer's default (true only for the Llama 3 family, as in llama.cpp). Bytes without
/// a token follow llama.cpp (missing_byte_policy::barrier): the unknown id is not used.
status spec_from_gguf(const gguf::file& file, tokenizer_spec& out);

/// spec_from_gguf, then bpe_tokenizer::create.
status load_gguf_tokenizer(const gguf::file& file, std::unique_ptr<bpe_tokenizer>& out,
                           const tokenizer_limits& limits = {});

/// Splits a GGUF merge "left right" at its first space after the first byte (a byte-level
/// token never holds a raw space). False when there is no such space or a side is empty.
bool split_merge(std::string_view merge, std::string& left, std::string& right);

}  // namespace bastion::kernels::tokenizer
