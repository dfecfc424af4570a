// word2vec.c's per-example update, compiled once per instruction set: CMake builds this file
// three times with FP_SGD_ISA set to the namespace (baseline, avx2, avx512) and that set's
// -m flags. The loops are written for the compiler to vectorise: axpy plainly, the dot products
// as `omp simd` reductions (-fopenmp-simd: vector partial sums, no OpenMP runtime).
#include <cmath>

#include "sgd.h"

#ifndef FP_SGD_ISA
#error "FP_SGD_ISA must name the namespace of this build (baseline, avx2, avx512)"
#endif

namespace fp {
namespace FP_SGD_ISA {

namespace {

constexpr float kMaxExp = 6.0f;  // word2vec.c's MAX_EXP: logits beyond saturate

inline float dot(const float* __restrict a, const float* __restrict b, int32_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int32_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// y += a * x
inline void axpy(float a, const float* __restrict x, float* __restrict y, int32_t n) {
#pragma omp simd
  for (int32_t i = 0; i < n; ++i) y[i] += a * x[i];
}

inline float sigmoid(float f) { return 1.0f / (1.0f + std::exp(-f)); }

// -log s(x), as torch's softplus(-x) (linear past 20).
inline float neg_log_sigmoid(float x) { return -x > 20.0f ? -x : std::log1p(std::exp(-x)); }

}  // namespace

float update(const SgdModel& m, const int32_t* s, int32_t center, int32_t first, int32_t last,
             const int32_t* negatives, float alpha, float* work, bool with_loss) {
  const int32_t d = m.dim;
  float* __restrict neu1 = work;
  float* __restrict neu1e = work + d;
  for (int32_t i = 0; i < d; ++i) neu1e[i] = 0.0f;
  const float* l1;
  int32_t count = 1;
  if (m.skipgram) {
    l1 = m.syn0 + static_cast<int64_t>(s[first]) * d;
  } else {
    for (int32_t i = 0; i < d; ++i) neu1[i] = 0.0f;
    count = 0;
    for (int32_t j = first; j <= last; ++j) {
      if (j == center) continue;
      const float* row = m.syn0 + static_cast<int64_t>(s[j]) * d;
#pragma omp simd
      for (int32_t i = 0; i < d; ++i) neu1[i] += row[i];
      ++count;
    }
    if (m.cbow_mean && count > 1) {
      const auto n = static_cast<float>(count);
#pragma omp simd
      for (int32_t i = 0; i < d; ++i) neu1[i] /= n;
    }
    l1 = neu1;
  }
  const int32_t word = s[center];
  float loss = 0.0f;
  if (m.hs) {
    const int64_t row = static_cast<int64_t>(word) * m.max_code_length;
    for (int32_t k = 0; k < m.code_lengths[word]; ++k) {
      float* w = m.syn1 + static_cast<int64_t>(m.points[row + k]) * d;
      const float code = static_cast<float>(m.codes[row + k]);
      const float f = dot(l1, w, d);
      if (with_loss) loss += neg_log_sigmoid(f * (1.0f - 2.0f * code));
      if (f <= -kMaxExp || f >= kMaxExp) continue;
      const float g = (1.0f - code - sigmoid(f)) * alpha;
      axpy(g, w, neu1e, d);
      axpy(g, l1, w, d);
    }
  }
  for (int32_t k = -1; m.syn1neg != nullptr && k < m.negative; ++k) {
    const int32_t target = k < 0 ? word : negatives[k];
    if (k >= 0 && target == word) continue;
    const float label = k < 0 ? 1.0f : 0.0f;
    float* w = m.syn1neg + static_cast<int64_t>(target) * d;
    const float f = dot(l1, w, d);
    if (with_loss) loss += neg_log_sigmoid(k < 0 ? f : -f);
    const float p = f > kMaxExp ? 1.0f : (f < -kMaxExp ? 0.0f : sigmoid(f));
    const float g = (label - p) * alpha;
    axpy(g, w, neu1e, d);
    axpy(g, l1, w, d);
  }
  if (m.skipgram) {
    axpy(1.0f, neu1e, m.syn0 + static_cast<int64_t>(s[first]) * d, d);
  } else {
    if (!m.cbow_mean && count > 1) {
      const auto n = static_cast<float>(count);
#pragma omp simd
      for (int32_t i = 0; i < d; ++i) neu1e[i] /= n;
    }
    for (int32_t j = first; j <= last; ++j) {
      if (j != center) axpy(1.0f, neu1e, m.syn0 + static_cast<int64_t>(s[j]) * d, d);
    }
  }
  return loss;
}

}  // namespace FP_SGD_ISA
}  // namespace fp
