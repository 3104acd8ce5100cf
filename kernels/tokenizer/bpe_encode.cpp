// bpe_tokenizer's encoding path: special tokens, pre-tokenizer pieces, and the merge loop.

#include "kernels/tokenizer/bpe_tokenizer.hpp"
#include "kernels/tokenizer/byte_level.hpp"

#include <algorithm>

namespace bastion::kernels::tokenizer {
namespace {

// One symbol of the word being merged: a token, linked to its live neighbours.
struct symbol {
  token_id id;
  std::int32_t prev;
  std::int32_t next;
  bool alive;
};

// A candidate merge of the adjacent symbols `left` and `right`. It is stale (skipped) when
// either side changed since it was queued; the ids make that check exact.
struct candidate {
  std::int32_t rank;
  std::int32_t left;
  std::int32_t right;
  token_id left_id;
  token_id right_id;
  token_id merged;
};

// Lowest rank first; among equal ranks the leftmost, as Hugging Face and llama.cpp order them.
struct later {
  bool operator()(const candidate& a, const candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  }
};

}  // namespace

struct bpe_tokenizer::scratch {
  std::vector<std::string_view> pieces;
  std::vector<symbol> symbols;
  std::vector<candidate> heap;  // a binary heap ordered by `later`
  std::string spelling;
};

status bpe_tokenizer::encode(std::string_view text, bool add_bos, bool parse_special,
                             std::vector<token_id>& out) const {
  return encode_special(text, add_bos, {parse_special, nullptr}, out);
}

status bpe_tokenizer::encode_with_control_ranges(
    std::string_view text, bool add_bos,
    const std::vector<std::pair<std::size_t, std::size_t>>& control_ranges,
    std::vector<token_id>& out) const {
  return encode_special(text, add_bos, {true, &control_ranges}, out);
}

status bpe_tokenizer::encode_special(std::string_view text, bool add_bos,
                                     const special_token_matcher::policy& allowed,
                                     std::vector<token_id>& out) const {
  out.clear();
  if (text.size() > limits_.text_bytes_max) {
    return {status_code::invalid_argument, "text of " + std::to_string(text.size()) +
                                               " bytes is over the limit of " +
                                               std::to_string(limits_.text_bytes_max)};
  }
  if (add_bos) {
    if (!bos_) return {status_code::invalid_argument, "BOS requested but the model has none"};
    out.push_back(*bos_);
  }
  scratch work;
  std::size_t done = 0;
  while (done < text.size()) {
    const auto m = specials_.find(text, done, allowed);
    const std::size_t plain_end = m.length ? m.position : text.size();
    if (plain_end > done) {
      if (auto st = encode_plain(text.substr(done, plain_end - done), work, out); !st) {
        out.clear();
        return st;
      }
    }
    if (!m.length) break;
    out.push_back(m.id);
    done = m.position + m.length;
  }
  return status::ok();
}

status bpe_tokenizer::encode_plain(std::string_view text, scratch& work,
                                   std::vector<token_id>& out) const {
  work.pieces.clear();
  if (auto st = pre_.split(text, work.pieces); !st) return st;
  for (std::string_view piece : work.pieces) encode_piece(piece, work, out);
  return status::ok();
}

void bpe_tokenizer::encode_piece(std::string_view piece, scratch& work,
                                 std::vector<token_id>& out) const {
  if (piece.size() == 1) {
    const token_id id = byte_token_[static_cast<unsigned char>(piece[0])];
    if (id >= 0) out.push_back(id);
    return;
  }
  if (ignore_merges_) {
    work.spelling.clear();
    byte_level::append_spelling(work.spelling, piece);
    if (const auto id = find(work.spelling)) {
      const token_kind k = kinds_[static_cast<std::size_t>(*id)];
      if (k == token_kind::normal || k == token_kind::byte) {
        out.push_back(*id);
        return;
      }
    }
  }
  // One symbol per byte. A byte without a token is -1 (a barrier: no merge has -1 as a side)
  // unless the policy is to skip it, in which case it gets no symbol at all.
  std::vector<symbol>& symbols = work.symbols;
  symbols.clear();
  for (char c : piece) {
    const token_id id = byte_token_[static_cast<unsigned char>(c)];
    if (id < 0 && missing_bytes_ == missing_byte_policy::skip) continue;
    symbols.push_back({id, static_cast<std::int32_t>(symbols.size()) - 1, -1, true});
  }
  if (symbols.empty()) return;
  const auto n = static_cast<std::int32_t>(symbols.size());
  for (std::int32_t i = 0; i + 1 < n; ++i) symbols[static_cast<std::size_t>(i)].next = i + 1;
  std::vector<candidate>& heap = work.heap;
  heap.clear();
  const auto consider = [&](std::int32_t left, std::int32_t right) {
    if (left < 0 || right < 0) return;
    const token_id l = symbols[static_cast<std::size_t>(left)].id;
    const token_id r = symbols[static_cast<std::size_t>(right)].id;
    if (l < 0 || r < 0) return;
    const auto it = merges_.find(pair_key(l, r));
    if (it == merges_.end()) return;
    heap.push_back({it->second.rank, left, right, l, r, it->second.merged});
    std::push_heap(heap.begin(), heap.end(), later{});
  };
  for (std::int32_t i = 0; i + 1 < n; ++i) consider(i, i + 1);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later{});
    const candidate c = heap.back();
    heap.pop_back();
    symbol& l = symbols[static_cast<std::size_t>(c.left)];
    symbol& r = symbols[static_cast<std::size_t>(c.right)];
    if (!l.alive || !r.alive || l.next != c.right || l.id != c.left_id || r.id != c.right_id) {
      continue;
    }
    l.id = c.merged;
    l.next = r.next;
    r.alive = false;
    if (r.next >= 0) symbols[static_cast<std::size_t>(r.next)].prev = c.left;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }
  for (std::int32_t i = 0; i >= 0; i = symbols[static_cast<std::size_t>(i)].next) {
    if (symbols[static_cast<std::size_t>(i)].id >= 0)
      out.push_back(symbols[static_cast<std::size_t>(i)].id);
  }
}

}  // namespace bastion::kernels::tokenizer
