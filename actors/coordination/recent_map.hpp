#pragma once
// A map that remembers at most `capacity` entries and forgets the oldest insertion first: the
// bound on what the release gate remembers about past requests (their outcomes and the
// fingerprints of their admissions). Updating an entry keeps its age: a request's later
// record does not make it young again.

#include <cstddef>
#include <deque>
#include <map>
#include <string>
#include <utility>

namespace bastion::coordination {

template <class Value>
class recent_map {
 public:
  /// `capacity` 0 is taken as 1: an entry just inserted is always there until the next insert.
  explicit recent_map(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  /// Inserts `value` under `key` unless the key is present. Returns the entry and whether it
  /// was inserted; the oldest entries beyond the capacity are forgotten.
  std::pair<Value*, bool> try_emplace(const std::string& key, Value value) {
    auto [it, added] = entries_.try_emplace(key, std::move(value));
    if (added) {
      order_.push_back(key);
      while (entries_.size() > capacity_) {
        entries_.erase(order_.front());
        order_.pop_front();
      }
    }
    return {&it->second, added};
  }

  const Value* find(const std::string& key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : &it->second;
  }

  std::size_t size() const noexcept { return entries_.size(); }

 private:
  std::size_t capacity_;
  std::map<std::string, Value> entries_;
  std::deque<std::string> order_;  // keys, oldest first
};

}  // namespace bastion::coordination
