#include "stream.h"

#include <stdexcept>
#include <string>

namespace fp {

void check_range(const char* name, int64_t value, int64_t low, int64_t high) {
  if (value < low || value > high) {
    throw std::invalid_argument(std::string(name) + ": expected an int in [" + std::to_string(low) + ", " +
                                std::to_string(high) + "], got " + std::to_string(value));
  }
}

int64_t count_words(const int32_t* ids, int64_t n, int32_t vocab) {
  int64_t words = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = ids[i];
    if (id >= vocab || id < kLineEnd) {
      throw std::out_of_range("ids[" + std::to_string(i) + "] = " + std::to_string(id) +
                              " is outside the vocabulary of " + std::to_string(vocab) + " words");
    }
    words += id >= 0;
  }
  return words;
}

}  // namespace fp
