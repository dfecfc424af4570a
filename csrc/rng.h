// SplitMix64: a tiny, fast generator whose every step is easy to reproduce in
// Python, so tests can replay the engine's sampling draw for draw.
#pragma once

#include <cstdint>

namespace fp {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  // Uniform double in [0, 1) from the top 53 bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  // Uniform integer in [0, n) for n < 2^32 (Lemire's multiply-shift on the top 32 bits).
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(((next() >> 32) * n) >> 32); }

 private:
  uint64_t state_;
};

// Seed of worker `w`'s stream: distinct, well-separated streams for one user seed.
inline uint64_t worker_seed(uint64_t seed, int w) {
  return seed + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(w + 1);
}

}  // namespace fp
