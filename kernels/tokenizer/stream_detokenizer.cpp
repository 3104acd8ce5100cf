#include "kernels/tokenizer/stream_detokenizer.hpp"

#include "kernels/tokenizer/utf8.hpp"

#include <cassert>

namespace bastion::kernels::tokenizer {

void utf8_stream::feed(std::string_view bytes, std::string& out) {
  // Join the held tail with just enough new bytes to settle it, then run on the rest in place.
  while (!held_.empty() && !bytes.empty()) {
    held_.push_back(bytes.front());
    bytes.remove_prefix(1);
    const utf8::sequence seq = utf8::classify(held_);
    if (seq.kind == utf8::sequence_kind::incomplete) continue;
    if (seq.kind == utf8::sequence_kind::complete) {
      out += held_;
      held_.clear();
    } else {
      // The held bytes (a valid prefix) end here; the byte that broke it starts afresh.
      out += utf8::replacement;
      std::string rest = held_.substr(seq.length);
      held_.clear();
      assert(rest.size() == 1);
      feed(rest, out);
    }
  }
  while (!bytes.empty()) {
    const utf8::sequence seq = utf8::classify(bytes);
    switch (seq.kind) {
      case utf8::sequence_kind::complete:
        out.append(bytes.substr(0, seq.length));
        break;
      case utf8::sequence_kind::invalid:
        out += utf8::replacement;
        break;
      case utf8::sequence_kind::incomplete:
        held_.assign(bytes);
        assert(held_.size() <= 3);
        break;
    }
    bytes.remove_prefix(seq.length);
  }
}

void utf8_stream::finish(std::string& out) {
  if (!held_.empty()) out += utf8::replacement;
  held_.clear();
}

status stream_detokenizer::push(token_id id, std::string& out) {
  scratch_.clear();
  if (auto st = tokenizer_.append_token_bytes(id, scratch_, render_special_); !st) return st;
  stream_.feed(scratch_, out);
  return status::ok();
}

}  // namespace bastion::kernels::tokenizer
