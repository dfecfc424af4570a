// Streaming tokenizer: splits UTF-8 text on ASCII whitespace (as word2vec.c does),
// counts every word and turns the stream into provisional word ids, one pass.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "word_table.h"

namespace fp {

// Marks the end of a line (a sentence boundary) in an id stream.
constexpr int32_t kLineEnd = -1;

class TextEncoder {
 public:
  // Tokenize one chunk of a byte stream. A word may straddle chunk boundaries.
  // Appends the word ids (in order of first appearance) and kLineEnd at each '\n'.
  // Throws std::invalid_argument on bytes that are not UTF-8.
  void feed(const char* data, size_t n, std::vector<int32_t>& out);
  // End of one source (file): flush a pending word and close its last line.
  void end_source(std::vector<int32_t>& out);
  // Add one already-split word; throws std::invalid_argument if it is empty or
  // holds whitespace.
  void add_word(std::string_view word, std::vector<int32_t>& out);

  WordTable& table() { return table_; }
  const WordTable& table() const { return table_; }
  uint64_t bytes_seen() const { return bytes_seen_; }

 private:
  void emit(std::string_view word, uint64_t offset, std::vector<int32_t>& out);

  WordTable table_;
  std::string pending_;        // bytes of a word cut by the chunk boundary
  uint64_t pending_offset_ = 0;
  uint64_t bytes_seen_ = 0;    // offset of the next byte in the current source
  bool line_open_ = false;     // a word was emitted since the last line end
};

// Remap provisional ids in place through `mapping` (negative = drop the word),
// keep line ends but never two in a row or one at the start. Returns the new length.
int64_t remap_ids(int32_t* ids, int64_t n, const int32_t* mapping, int64_t mapping_size);

}  // namespace fp
