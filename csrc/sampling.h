// word2vec's sampling distributions: frequent-word subsampling, the unigram^0.75
// noise distribution (as an alias table) and the Huffman tree of hierarchical softmax.
#pragma once

#include <cstdint>
#include <vector>

#include "rng.h"

namespace fp {

// word2vec.c's keep probability min(1, (sqrt(f/(s*T)) + 1) * (s*T)/f) for each word
// of count f, T the total count; all ones when sample == 0.
std::vector<double> keep_probabilities(const std::vector<int64_t>& counts, double sample);

// Walker/Vose alias table: O(1) draws from a discrete distribution.
class AliasTable {
 public:
  AliasTable() = default;
  explicit AliasTable(const std::vector<double>& weights);

  // One 64-bit draw: the top 32 bits pick the column, the low 32 bits the coin.
  int32_t sample(SplitMix64& rng) const {
    const uint64_t r = rng.next();
    const auto i = static_cast<uint32_t>(((r >> 32) * n_) >> 32);
    const uint64_t entry = packed_[i];
    return (r & 0xFFFFFFFFULL) < (entry >> 32) ? static_cast<int32_t>(i) : static_cast<int32_t>(entry & 0xFFFFFFFFULL);
  }
  uint32_t size() const { return n_; }
  const std::vector<uint64_t>& thresholds() const { return threshold_; }
  const std::vector<int32_t>& aliases() const { return alias_; }

 private:
  uint32_t n_ = 0;
  std::vector<uint64_t> threshold_;  // accept column i when coin < threshold (scale 2^32)
  std::vector<int32_t> alias_;
  // threshold << 32 | alias in one word: one cache miss per draw. A full column's threshold
  // 2^32 is stored as 2^32 - 1, which changes nothing since a full column is its own alias.
  std::vector<uint64_t> packed_;
};

// Huffman codes of hierarchical softmax, word2vec.c's layout: for word w with code
// length L, points[w][0..L) are inner-node ids (root = V-2) from the root down and
// codes[w][i] is the branch (0/1) taken below points[w][i]. Padded rows: code 0, point -1.
struct HuffmanCodes {
  int32_t max_length = 0;
  std::vector<int32_t> lengths;  // [V]
  std::vector<int8_t> codes;     // [V, max_length]
  std::vector<int32_t> points;   // [V, max_length]
};
HuffmanCodes build_huffman(const std::vector<int64_t>& counts);

}  // namespace fp
