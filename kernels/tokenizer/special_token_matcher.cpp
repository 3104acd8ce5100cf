#include "kernels/tokenizer/special_token_matcher.hpp"

#include <algorithm>
#include <cassert>

namespace bastion::kernels::tokenizer {
namespace {

bool inside(const std::vector<std::pair<std::size_t, std::size_t>>& ranges, std::size_t begin,
            std::size_t end) {
  // The last range starting at or before `begin` is the only one that can hold it.
  auto it = std::upper_bound(ranges.begin(), ranges.end(), begin,
                             [](std::size_t v, const auto& r) { return v < r.first; });
  if (it == ranges.begin()) return false;
  --it;
  return begin >= it->first && end <= it->second;
}

}  // namespace

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
                                              const policy& allowed, std::int32_t& id) const {
  std::size_t best = 0;
  std::uint32_t at = 0;
  for (std::size_t i = pos; i < text.size(); ++i) {
    const auto it = edges_.find(edge_key(at, static_cast<unsigned char>(text[i])));
    if (it == edges_.end()) break;
    at = it->second;
    const node& n = nodes_[at];
    const bool ok =
        n.id >= 0 && (!n.needs_parse_special ||
                      (allowed.parse_special &&
                       (!allowed.control_ranges || inside(*allowed.control_ranges, pos, i + 1))));
    if (ok) {
      best = i + 1 - pos;
      id = n.id;
    }
  }
  return best;
}

special_token_matcher::match special_token_matcher::find(std::string_view text, std::size_t from,
                                                         const policy& allowed) const {
  if (empty()) return {};
  for (std::size_t pos = from; pos < text.size(); ++pos) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) continue;
    std::int32_t id = -1;
    if (const std::size_t len = longest_at(text, pos, allowed, id); len > 0) {
      return {pos, len, id};
    }
  }
  return {};
}

}  // namespace bastion::kernels::tokenizer
