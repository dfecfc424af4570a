#include "text_encoder.h"

#include <stdexcept>
#include <string>

namespace fp {
namespace {

inline bool is_space(unsigned char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

// Index of the first byte that breaks UTF-8 well-formedness, or -1.
int64_t first_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return static_cast<int64_t>(i);
    if (i + len > n) return static_cast<int64_t>(i);
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return static_cast<int64_t>(i);
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    const bool overlong = (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return static_cast<int64_t>(i);
    i += len;
  }
  return -1;
}

}  // namespace

void TextEncoder::emit(std::string_view word, uint64_t offset, std::vector<int32_t>& out) {
  const int64_t bad = first_invalid_utf8(word);
  if (bad >= 0) {
    throw std::invalid_argument("text is not valid UTF-8: bad byte at offset " +
                                std::to_string(offset + static_cast<uint64_t>(bad)));
  }
  const int32_t id = table_.find_or_insert(word);
  table_.add_count(id, 1);
  out.push_back(id);
  line_open_ = true;
}

void TextEncoder::feed(const char* data, size_t n, std::vector<int32_t>& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  size_t i = 0;
  if (!pending_.empty()) {  // finish the word cut at the last chunk boundary
    while (i < n && !is_space(p[i])) ++i;
    pending_.append(data, i);
    if (i == n) { bytes_seen_ += n; return; }
    emit(pending_, pending_offset_, out);
    pending_.clear();
  }
  while (i < n) {
    while (i < n && is_space(p[i])) {
      if (p[i] == '\n' && line_open_) { out.push_back(kLineEnd); line_open_ = false; }
      ++i;
    }
    const size_t start = i;
    while (i < n && !is_space(p[i])) ++i;
    if (start == i) break;
    if (i == n) {
      pending_.assign(data + start, i - start);
      pending_offset_ = bytes_seen_ + start;
      break;
    }
    emit(std::string_view(data + start, i - start), bytes_seen_ + start, out);
  }
  bytes_seen_ += n;
}

void TextEncoder::end_source(std::vector<int32_t>& out) {
  if (!pending_.empty()) {
    emit(pending_, pending_offset_, out);
    pending_.clear();
  }
  if (line_open_) { out.push_back(kLineEnd); line_open_ = false; }
  bytes_seen_ = 0;
}

void TextEncoder::add_word(std::string_view word, std::vector<int32_t>& out) {
  if (word.empty()) throw std::invalid_argument("empty token");
  for (unsigned char c : word) {
    if (is_space(c)) throw std::invalid_argument("token '" + std::string(word) + "' contains whitespace");
  }
  emit(word, 0, out);
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
