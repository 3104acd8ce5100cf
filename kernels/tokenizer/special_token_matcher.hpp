#pragma once
// Finds special and added tokens written out in text ("<|im_start|>"), so they become their
// own token instead of being spelled with BPE. Matching is leftmost-longest (Hugging Face's
// added-token matcher): at the first position where any allowed token starts, the longest one
// starting there wins, and a matched token is never split.

#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace bastion::kernels::tokenizer {

class special_token_matcher {
 public:
  /// Adds `text` (non-empty) as token `id`. `needs_parse_special`: recognised only when the
  /// caller asks for special tokens (control tokens); otherwise always (user-defined tokens).
  /// REQUIRES: each text is added once.
  void add(std::string_view text, std::int32_t id, bool needs_parse_special);

  struct match {
    std::size_t position = 0;  // byte offset in the text
    std::size_t length = 0;    // 0: no match
    std::int32_t id = -1;
  };

  /// Which tokens may match: user-defined ones always; control ones when parse_special, and
  /// then, if `control_ranges` is given, only when they lie wholly inside one of its
  /// [begin, end) byte ranges (sorted, not overlapping).
  struct policy {
    bool parse_special = false;
    const std::vector<std::pair<std::size_t, std::size_t>>* control_ranges = nullptr;
  };

  /// The leftmost-longest allowed token in `text` at or after `from`; length 0 when none.
  match find(std::string_view text, std::size_t from, const policy& allowed) const;

  bool empty() const noexcept { return nodes_.size() == 1; }

 private:
  struct node {
    std::int32_t id = -1;  // the token ending here, or -1
    bool needs_parse_special = false;
  };
  // A byte trie: node 0 is the root; edges live in one hash map keyed by (node, byte).
  std::vector<node> nodes_{node{}};
  std::unordered_map<std::uint64_t, std::uint32_t> edges_;
  bool first_byte_[256] = {};

  static std::uint64_t edge_key(std::uint32_t from, unsigned char byte) {
    return (std::uint64_t{from} << 8) | byte;
  }
  std::size_t longest_at(std::string_view text, std::size_t pos, const policy& allowed,
                         std::int32_t& id) const;
};

}  // namespace bastion::kernels::tokenizer
