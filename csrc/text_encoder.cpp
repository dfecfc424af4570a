#include "text_encoder.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>

namespace fp {
namespace {

inline bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Bytes of the UTF-8 sequence a lead byte opens (1 for ASCII and for bytes that open none).
inline size_t sequence_length(unsigned char c) {
  if ((c & 0xE0) == 0xC0) return 2;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return 4;
  return 1;
}

// Length of a code point cut off at the end of p[0, n): its first bytes, or 0 if none is cut.
size_t cut_code_point(const unsigned char* p, size_t n) {
  for (size_t k = 1; k <= std::min<size_t>(3, n); ++k) {
    if (!is_continuation(p[n - k])) return sequence_length(p[n - k]) > k ? k : 0;
  }
  return 0;
}

// "U+00A0" for the code point of `len` bytes at p.
std::string code_point_name(const unsigned char* p, size_t len) {
  uint32_t cp = len == 1 ? p[0] : len == 2 ? p[0] & 0x1F : p[0] & 0x0F;
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (p[k] & 0x3F);
  char name[16];
  std::snprintf(name, sizeof name, "U+%04X", cp);
  return name;
}

// Index of the first byte that breaks UTF-8 well-formedness, or -1.
int64_t first_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) { ++i; continue; }
    const size_t len = sequence_length(c);
    if (len == 1 || i + len > n) return static_cast<int64_t>(i);
    uint32_t cp = c & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) {
      if (!is_continuation(p[i + k])) return static_cast<int64_t>(i);
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    const bool overlong = (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return static_cast<int64_t>(i);
    i += len;
  }
  return -1;
}

}  // namespace

size_t space_at(const unsigned char* p, size_t i, size_t n) {
  const unsigned char c = p[i];
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) ? 1 : 0;
  if (c == 0xC2) return i + 1 < n && (p[i + 1] == 0x85 || p[i + 1] == 0xA0) ? 2 : 0;  // NEL, NBSP
  if (c < 0xE1 || c > 0xE3 || i + 2 >= n) return 0;
  const unsigned char b = p[i + 1], d = p[i + 2];
  if (c == 0xE1) return b == 0x9A && d == 0x80 ? 3 : 0;  // U+1680 Ogham space mark
  if (c == 0xE3) return b == 0x80 && d == 0x80 ? 3 : 0;  // U+3000 ideographic space
  if (b == 0x80) return (d >= 0x80 && d <= 0x8A) || d == 0xA8 || d == 0xA9 || d == 0xAF ? 3 : 0;  // U+2000-202F
  return b == 0x81 && d == 0x9F ? 3 : 0;  // U+205F medium mathematical space
}

TextEncoder::TextEncoder(int64_t max_vocab_size) : max_vocab_size_(max_vocab_size) {
  if (max_vocab_size < 0) throw std::invalid_argument("max_vocab_size: expected >= 0 (0: no pruning)");
}

void TextEncoder::emit(std::string_view word, uint64_t offset, std::vector<int32_t>& out) {
  const int64_t bad = first_invalid_utf8(word);
  if (bad >= 0) {
    throw std::invalid_argument("text is not valid UTF-8: bad byte at offset " +
                                std::to_string(offset + static_cast<uint64_t>(bad)));
  }
  const int32_t id = table_.find_or_insert(word);
  if (table_.count(id) == 0) live_.push_back(id);
  table_.add_count(id, 1);
  out.push_back(id);
  line_open_ = true;
  ++line_words_;
}

void TextEncoder::read_word(std::string_view word, uint64_t offset, std::vector<int32_t>& out) {
  emit(word, offset, out);
  if (line_words_ % kScanSentenceWords == 0) sentence_end();
}

void TextEncoder::end_line(std::vector<int32_t>& out) {
  if (line_words_ % kScanSentenceWords != 0) sentence_end();
  if (line_open_) out.push_back(kLineEnd);
  line_open_ = false;
  line_words_ = 0;
}

void TextEncoder::sentence_end() {
  if (max_vocab_size_ <= 0 || static_cast<int64_t>(live_.size()) <= max_vocab_size_) return;
  size_t kept = 0;
  for (const int32_t id : live_) {
    if (table_.count(id) >= min_reduce_) {
      live_[kept++] = id;
    } else {
      table_.reset_count(id);
    }
  }
  live_.resize(kept);
  ++min_reduce_;
}

void TextEncoder::scan(const char* data, size_t n, uint64_t offset, std::vector<int32_t>& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  size_t i = 0;
  if (!pending_.empty()) {  // finish the word cut at the last chunk boundary
    while (i < n && space_at(p, i, n) == 0) ++i;
    pending_.append(data, i);
    if (i == n) return;
    read_word(pending_, pending_offset_, out);
    pending_.clear();
  }
  while (i < n) {
    for (size_t s; i < n && (s = space_at(p, i, n)) > 0; i += s) {
      if (p[i] == '\n') end_line(out);
    }
    const size_t start = i;
    while (i < n && space_at(p, i, n) == 0) ++i;
    if (start == i) break;
    if (i == n) {
      pending_.assign(data + start, i - start);
      pending_offset_ = offset + start;
      break;
    }
    read_word(std::string_view(data + start, i - start), offset + start, out);
  }
}

void TextEncoder::feed(const char* data, size_t n, std::vector<int32_t>& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  size_t i = 0;
  if (!carry_.empty()) {  // finish the code point cut at the last chunk boundary
    const size_t missing = sequence_length(carry_[0]) - carry_.size();
    while (i < n && i < missing && is_continuation(p[i])) ++i;
    carry_.append(data, i);
    if (i == n && i < missing) {
      bytes_seen_ += n;
      return;
    }
    const std::string code_point = std::move(carry_);
    carry_.clear();
    scan(code_point.data(), code_point.size(), carry_offset_, out);
  }
  const size_t cut = cut_code_point(p + i, n - i);
  scan(data + i, n - i - cut, bytes_seen_ + i, out);
  carry_.assign(data + n - cut, cut);
  carry_offset_ = bytes_seen_ + n - cut;
  bytes_seen_ += n;
}

void TextEncoder::end_source(std::vector<int32_t>& out) {
  if (!carry_.empty()) {  // the source ends inside a code point: emit() reports the bad bytes
    const std::string code_point = std::move(carry_);
    carry_.clear();
    scan(code_point.data(), code_point.size(), carry_offset_, out);
  }
  if (!pending_.empty()) {
    read_word(pending_, pending_offset_, out);
    pending_.clear();
  }
  end_line(out);
  bytes_seen_ = 0;
}

void TextEncoder::add_word(std::string_view word, std::vector<int32_t>& out) {
  if (word.empty()) throw std::invalid_argument("empty token");
  const auto* p = reinterpret_cast<const unsigned char*>(word.data());
  for (size_t i = 0; i < word.size(); ++i) {
    if (const size_t s = space_at(p, i, word.size())) {
      throw std::invalid_argument("token '" + std::string(word.substr(0, 60)) + "' contains whitespace (" +
                                  code_point_name(p + i, s) + "); split it into tokens");
    }
  }
  emit(word, 0, out);
}

void TextEncoder::end_sentence(std::vector<int32_t>& out) {
  sentence_end();
  if (line_open_) out.push_back(kLineEnd);
  line_open_ = false;
  line_words_ = 0;
}

std::vector<int32_t> TextEncoder::final_order(int64_t min_count, int64_t max_final_vocab, bool sorted) const {
  int64_t threshold = min_count;
  if (max_final_vocab >= 0 && max_final_vocab < static_cast<int64_t>(live_.size())) {
    std::vector<int64_t> counts;
    counts.reserve(live_.size());
    for (const int32_t id : live_) counts.push_back(table_.count(id));
    std::nth_element(counts.begin(), counts.begin() + max_final_vocab, counts.end(), std::greater<int64_t>());
    threshold = std::max(threshold, counts[max_final_vocab] + 1);
  }
  std::vector<int32_t> order;
  for (const int32_t id : live_) {
    if (table_.count(id) >= threshold) order.push_back(id);
  }
  if (sorted) {
    std::reverse(order.begin(), order.end());
    const auto by_count = [&](int32_t a, int32_t b) { return table_.count(a) > table_.count(b); };
    std::stable_sort(order.begin(), order.end(), by_count);
  }
  return order;
}

int64_t remap_ids(int32_t* ids, int64_t n, const int32_t* mapping, int64_t mapping_size) {
  int64_t j = 0;
  bool line_open = false;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = ids[i];
    if (id == kLineEnd) {
      if (line_open) { ids[j++] = kLineEnd; line_open = false; }
      continue;
    }
    if (id < 0 || id >= mapping_size) throw std::out_of_range("id " + std::to_string(id) + " outside the mapping");
    const int32_t to = mapping[id];
    if (to >= 0) { ids[j++] = to; line_open = true; }
  }
  return j;
}

}  // namespace fp
