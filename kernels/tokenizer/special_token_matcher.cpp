#include "kernels/tokenizer/special_token_matcher.hpp"

#include <cassert>

namespace bastion::kernels::tokenizer {

void special_token_matcher::add(std::string_view text, std::int32_t id, bool needs_parse_special) {
  assert(!text.empty() && id >= 0);
  std::uint32_t at = 0;
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    auto [it, inserted] = edges_.try_emplace(edge_key(at, byte), 0);
    if (inserted) {
      it->second = static_cast<std::uint32_t>(nodes_.size());
      nodes_.push_back(node{});
    }
    at = it->second;
  }
  assert(nodes_[at].id < 0 && "each special token text is added once");
  nodes_[at].id = id;
  nodes_[at].needs_parse_special = needs_parse_special;
  first_byte_[static_cast<unsigned char>(text.front())] = true;
}

std::size_t special_token_matcher::longest_at(std::string_view text, std::size_t pos,
                                              bool parse_special, std::int32_t& id) const {
  std::size_t best = 0;
  std::uint32_t at = 0;
  for (std::size_t i = pos; i < text.size(); ++i) {
    const auto it = edges_.find(edge_key(at, static_cast<unsigned char>(text[i])));
    if (it == edges_.end()) break;
    at = it->second;
    const node& n = nodes_[at];
    if (n.id >= 0 && (parse_special || !n.needs_parse_special)) {
      best = i + 1 - pos;
      id = n.id;
    }
  }
  return best;
}

special_token_matcher::match special_token_matcher::find(std::string_view text, std::size_t from,
                                                         bool parse_special) const {
  if (empty()) return {};
  for (std::size_t pos = from; pos < text.size(); ++pos) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) continue;
    std::int32_t id = -1;
    if (const std::size_t len = longest_at(text, pos, parse_special, id); len > 0) {
      return {pos, len, id};
    }
  }
  return {};
}

}  // namespace bastion::kernels::tokenizer
