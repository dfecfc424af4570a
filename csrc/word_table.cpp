#include "word_table.h"

#include <stdexcept>

namespace fp {

WordTable::WordTable() : starts_{0}, slots_(1 << 16, -1) {}

uint64_t WordTable::hash(std::string_view word) {
  uint64_t h = 0xCBF29CE484222325ULL;  // FNV-1a
  for (unsigned char c : word) h = (h ^ c) * 0x100000001B3ULL;
  return h;
}

size_t WordTable::slot_of(std::string_view word, uint64_t h) const {
  const size_t mask = slots_.size() - 1;
  for (size_t s = h & mask;; s = (s + 1) & mask) {
    const int32_t id = slots_[s];
    if (id < 0 || (hashes_[id] == h && this->word(id) == word)) return s;
  }
}

int32_t WordTable::find(std::string_view word) const {
  return slots_[slot_of(word, hash(word))];
}

int32_t WordTable::find_or_insert(std::string_view word) {
  const uint64_t h = hash(word);
  size_t s = slot_of(word, h);
  if (slots_[s] >= 0) return slots_[s];
  if (counts_.size() >= 0x7FFFFFF0) throw std::length_error("vocabulary exceeds 2^31 distinct words");
  const int32_t id = size();
  arena_.append(word);
  starts_.push_back(arena_.size());
  hashes_.push_back(h);
  counts_.push_back(0);
  slots_[s] = id;
  if (static_cast<size_t>(size()) * 10 > slots_.size() * 7) grow();
  return id;
}

void WordTable::grow() {
  std::vector<int32_t> old(slots_.size() * 2, -1);
  slots_.swap(old);
  const size_t mask = slots_.size() - 1;
  for (int32_t id = 0; id < size(); ++id) {
    size_t s = hashes_[id] & mask;
    while (slots_[s] >= 0) s = (s + 1) & mask;
    slots_[s] = id;
  }
}

}  // namespace fp
