// Open-addressing hash table from words (UTF-8 bytes) to dense ids with counts,
// the structure word2vec.c builds its vocabulary in.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fp {

class WordTable {
 public:
  WordTable();

  // Id of `word`, inserting it with count 0 if new.
  int32_t find_or_insert(std::string_view word);
  // Id of `word`, or -1 if absent.
  int32_t find(std::string_view word) const;

  void add_count(int32_t id, int64_t n) { counts_[id] += n; }
  void reset_count(int32_t id) { counts_[id] = 0; }
  int64_t count(int32_t id) const { return counts_[id]; }
  const std::vector<int64_t>& counts() const { return counts_; }
  std::string_view word(int32_t id) const {
    return std::string_view(arena_.data() + starts_[id], starts_[id + 1] - starts_[id]);
  }
  int32_t size() const { return static_cast<int32_t>(counts_.size()); }

 private:
  static uint64_t hash(std::string_view word);
  size_t slot_of(std::string_view word, uint64_t h) const;
  void grow();

  std::string arena_;             // all words back to back
  std::vector<uint64_t> starts_;  // word i is arena_[starts_[i], starts_[i+1])
  std::vector<uint64_t> hashes_;
  std::vector<int64_t> counts_;
  std::vector<int32_t> slots_;    // -1 = empty, else word id; size is a power of two
};

}  // namespace fp
