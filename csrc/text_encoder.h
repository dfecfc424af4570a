// Streaming tokenizer: splits UTF-8 text on whitespace as Python's str.split() does (ASCII
// whitespace, \x1c-\x1f and the Unicode spaces: NBSP, U+2028, U+3000, ...), so every word
// it makes survives a round trip through a "word count" vocabulary file read with split().
// Only '\n' ends a line. Counts every word and turns the stream into provisional word ids,
// one pass; gensim's scan-time vocabulary pruning (max_vocab_size) runs as it reads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "word_table.h"

namespace fp {

// Marks the end of a line (a sentence boundary) in an id stream.
constexpr int32_t kLineEnd = -1;
// gensim's LineSentence yields a long line as pieces of this many words; each piece is a
// sentence for the pruning check.
constexpr int64_t kScanSentenceWords = 10000;

// Byte length of the whitespace code point at p[i] (the bytes p[i, n) are available), or 0.
size_t space_at(const unsigned char* p, size_t i, size_t n);

class TextEncoder {
 public:
  // max_vocab_size > 0: gensim's scan-time pruning; whenever more than that many distinct
  // words are counted at a sentence end, the words counted fewer than 1, 2, 3, ... times (one
  // more at each pruning) are forgotten; a forgotten word that comes back counts from zero.
  explicit TextEncoder(int64_t max_vocab_size = 0);

  // Tokenize one chunk of a byte stream. Words and code points may straddle chunk boundaries.
  // Appends the word ids (in order of first appearance) and kLineEnd at each '\n'.
  // Throws std::invalid_argument on bytes that are not UTF-8.
  void feed(const char* data, size_t n, std::vector<int32_t>& out);
  // End of one source (file): flush a pending word and close its last line.
  void end_source(std::vector<int32_t>& out);
  // Add one already-split word; throws std::invalid_argument if it is empty or holds whitespace.
  void add_word(std::string_view word, std::vector<int32_t>& out);
  // End of one already-split sentence: close its line (a pruning check even when it is empty).
  void end_sentence(std::vector<int32_t>& out);

  // Provisional ids of the words kept by gensim's rules: count >= min_count, and with
  // max_final_vocab >= 0 also count > the count of the (max_final_vocab + 1)-th most frequent
  // word (ties at the cut all go). sorted: by decreasing count, ties the word counted last
  // first (gensim 4.4's sort_by_descending_frequency); else in order of first count.
  std::vector<int32_t> final_order(int64_t min_count, int64_t max_final_vocab, bool sorted) const;

  WordTable& table() { return table_; }
  const WordTable& table() const { return table_; }
  uint64_t bytes_seen() const { return bytes_seen_; }

 private:
  void scan(const char* data, size_t n, uint64_t offset, std::vector<int32_t>& out);
  void emit(std::string_view word, uint64_t offset, std::vector<int32_t>& out);
  void read_word(std::string_view word, uint64_t offset, std::vector<int32_t>& out);  // emit, then the 10000-word check
  void end_line(std::vector<int32_t>& out);  // '\n' or the end of a source
  void sentence_end();                       // the pruning check

  WordTable table_;
  int64_t max_vocab_size_;
  int64_t min_reduce_ = 1;         // pruning drops counts below this, then it grows by one
  std::vector<int32_t> live_;      // ids counted since they were last pruned, in order of that count
  std::string carry_;              // bytes of a code point cut by the chunk boundary
  uint64_t carry_offset_ = 0;
  std::string pending_;            // bytes of a word cut by the chunk boundary
  uint64_t pending_offset_ = 0;
  uint64_t bytes_seen_ = 0;        // offset of the next byte in the current source
  bool line_open_ = false;         // a word was emitted since the last line end
  int64_t line_words_ = 0;         // words emitted since the last line end
};

// Remap provisional ids in place through `mapping` (negative = drop the word),
// keep line ends but never two in a row or one at the start. Returns the new length.
int64_t remap_ids(int32_t* ids, int64_t n, const int32_t* mapping, int64_t mapping_size);

}  // namespace fp
