// word2vec.c's walk over the id stream, shared by the batch producer and the trainer so that both
// draw the same random numbers in the same order: a sentence is read with frequent-word
// subsampling, then each center draws its dynamic window and each example its negatives.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "rng.h"
#include "sampling.h"
#include "text_encoder.h"

namespace fp {

struct StreamOptions {
  bool skipgram = true;        // false: CBOW examples (context window -> center)
  bool shrink_windows = true;  // false: every center uses the full window (no draw)
  int32_t window = 5;
  int32_t negative = 0;        // negatives per pair (skip-gram) or per example (CBOW)
  int32_t max_sentence_length = 1000;
};

// "name: expected an int in [low, high], got value" unless low <= value <= high.
void check_range(const char* name, int64_t value, int64_t low, int64_t high);

// Words (ids >= 0) in ids[0, n); throws std::out_of_range naming the first id outside
// [kLineEnd, vocab).
int64_t count_words(const int32_t* ids, int64_t n, int32_t vocab);

// word2vec.c's ReadWord loop from ids[pos] up to hi: subsample as we read (keep[id] < 1 draws a
// uniform), stop at a line end or at max_sentence_length kept words. Adds the words read, kept or
// not, to *words_read; returns the position after the sentence.
inline int64_t read_sentence(const int32_t* ids, int64_t pos, int64_t hi, const double* keep, int32_t max_length,
                             SplitMix64& rng, std::vector<int32_t>& sentence, int64_t* words_read) {
  sentence.clear();
  while (pos < hi && sentence.size() < static_cast<size_t>(max_length)) {
    const int32_t id = ids[pos++];
    if (id == kLineEnd) {
      if (sentence.empty()) continue;
      break;
    }
    ++*words_read;
    if (keep[id] < 1.0 && keep[id] < rng.uniform()) continue;
    sentence.push_back(id);
  }
  return pos;
}

// The examples of sentence s in word2vec.c's order. Each center i draws a window reach
// r = window - U[0, window) (the full window without shrink_windows); its contexts are the
// positions [max(0, i - r), min(len - 1, i + r)] except i. Skip-gram makes one example per
// context j, CBOW one per center whose window holds a context. Each example draws
// o.negative noise ids into negatives, then visit(i, first, last, negatives) gets the center's
// position and its contexts, the positions [first, last] except i. A false from visit stops the
// walk, and for_each_example returns false.
template <class Visit>
bool for_each_example(const std::vector<int32_t>& s, const StreamOptions& o, const AliasTable& noise,
                      SplitMix64& rng, std::vector<int32_t>& negatives, Visit&& visit) {
  const auto len = static_cast<int32_t>(s.size());
  auto draw = [&] {
    for (int32_t k = 0; k < o.negative; ++k) negatives[k] = noise.sample(rng);
  };
  for (int32_t i = 0; i < len; ++i) {
    const int32_t shrink = o.shrink_windows ? static_cast<int32_t>(rng.below(o.window)) : 0;
    const int32_t reach = o.window - shrink;
    const int32_t a = std::max(0, i - reach), b = std::min(len - 1, i + reach);
    if (o.skipgram) {
      for (int32_t j = a; j <= b; ++j) {
        if (j == i) continue;
        draw();
        if (!visit(i, j, j, negatives.data())) return false;
      }
    } else if (b > a) {
      draw();
      if (!visit(i, a, b, negatives.data())) return false;
    }
  }
  return true;
}

}  // namespace fp
