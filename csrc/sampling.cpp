#include "sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace fp {

std::vector<double> keep_probabilities(const std::vector<int64_t>& counts, double sample) {
  std::vector<double> keep(counts.size(), 1.0);
  if (sample <= 0) return keep;
  const double total = static_cast<double>(std::accumulate(counts.begin(), counts.end(), int64_t{0}));
  const double threshold = sample * total;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double f = static_cast<double>(counts[i]);
    if (f > 0) keep[i] = std::min(1.0, (std::sqrt(f / threshold) + 1.0) * threshold / f);
  }
  return keep;
}

AliasTable::AliasTable(const std::vector<double>& weights)
    : n_(static_cast<uint32_t>(weights.size())), threshold_(weights.size()), alias_(weights.size()) {
  if (weights.empty() || weights.size() >= (1ULL << 32)) throw std::invalid_argument("alias table needs 1..2^32-1 weights");
  double total = 0;
  for (double w : weights) {
    if (!(w >= 0) || !std::isfinite(w)) throw std::invalid_argument("alias weights must be finite and >= 0");
    total += w;
  }
  if (!(total > 0)) throw std::invalid_argument("alias weights sum to zero");
  // Vose: scale to mean 1, pair each under-full column with an over-full donor.
  std::vector<double> scaled(n_);
  std::vector<uint32_t> small, large;
  for (uint32_t i = 0; i < n_; ++i) {
    scaled[i] = weights[i] * n_ / total;
    (scaled[i] < 1.0 ? small : large).push_back(i);
  }
  const double one = 4294967296.0;  // 2^32
  while (!small.empty() && !large.empty()) {
    const uint32_t s = small.back(), l = large.back();
    small.pop_back();
    threshold_[s] = static_cast<uint64_t>(std::llround(scaled[s] * one));
    alias_[s] = static_cast<int32_t>(l);
    scaled[l] -= 1.0 - scaled[s];
    if (scaled[l] < 1.0) { large.pop_back(); small.push_back(l); }
  }
  // Leftovers are full columns up to rounding error.
  for (uint32_t i : small) { threshold_[i] = 1ULL << 32; alias_[i] = static_cast<int32_t>(i); }
  for (uint32_t i : large) { threshold_[i] = 1ULL << 32; alias_[i] = static_cast<int32_t>(i); }
  packed_.resize(n_);
  for (uint32_t i = 0; i < n_; ++i) {
    packed_[i] = (std::min<uint64_t>(threshold_[i], 0xFFFFFFFFULL) << 32) | static_cast<uint32_t>(alias_[i]);
  }
}

HuffmanCodes build_huffman(const std::vector<int64_t>& counts) {
  const int64_t v = static_cast<int64_t>(counts.size());
  HuffmanCodes h;
  h.lengths.assign(v, 0);
  if (v < 2) return h;
  // Two-queue construction: leaves in increasing count, inner nodes appear in
  // increasing count too, so the two smallest are always at the queue fronts.
  std::vector<int64_t> leaves(v);
  std::iota(leaves.begin(), leaves.end(), 0);
  std::stable_sort(leaves.begin(), leaves.end(), [&](int64_t a, int64_t b) { return counts[a] < counts[b]; });
  const int64_t nodes = 2 * v - 1;  // leaves 0..v-1 are word ids, inner node k is v+k
  std::vector<int64_t> weight(nodes), parent(nodes, -1);
  std::vector<int8_t> branch(nodes, 0);
  for (int64_t i = 0; i < v; ++i) weight[i] = counts[i];
  int64_t next_leaf = 0, next_inner = v;
  auto pop_min = [&](int64_t made) {
    if (next_leaf < v && (next_inner >= made || weight[leaves[next_leaf]] < weight[next_inner])) {
      return leaves[next_leaf++];
    }
    return next_inner++;
  };
  for (int64_t made = v; made < nodes; ++made) {
    const int64_t a = pop_min(made);
    const int64_t b = pop_min(made);
    weight[made] = weight[a] + weight[b];
    parent[a] = parent[b] = made;
    branch[b] = 1;
  }
  std::vector<int32_t> depth(nodes, 0);
  for (int64_t n = nodes - 2; n >= 0; --n) depth[n] = depth[parent[n]] + 1;  // parents have larger ids
  for (int64_t w = 0; w < v; ++w) h.max_length = std::max(h.max_length, depth[w]);
  h.codes.assign(v * h.max_length, 0);
  h.points.assign(v * h.max_length, -1);
  for (int64_t w = 0; w < v; ++w) {
    const int32_t len = depth[w];
    h.lengths[w] = len;
    int64_t node = w;
    for (int32_t d = len - 1; d >= 0; --d) {  // walk up, filling from the bottom
      h.codes[w * h.max_length + d] = branch[node];
      node = parent[node];
      h.points[w * h.max_length + d] = static_cast<int32_t>(node - v);
    }
  }
  return h;
}

}  // namespace fp
