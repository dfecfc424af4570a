// word2vec.c's per-example update, compiled once per instruction set: CMake builds this file
// three times with FP_SGD_ISA set to the namespace (baseline, avx2, avx512) and that set's -m
// flags. The two vector loops, a dot product and the fused pair of axpys that each target's
// update is, are written with the set's intrinsics (AVX-512: masked tails); the baseline build's
// plain loops keep four partial sums, which the compiler vectorises with SSE2.
#include <cmath>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "sgd.h"

#ifndef FP_SGD_ISA
#error "FP_SGD_ISA must name the namespace of this build (baseline, avx2, avx512)"
#endif

namespace fp {
namespace FP_SGD_ISA {

namespace {

constexpr float kMaxExp = 6.0f;  // word2vec.c's MAX_EXP: logits beyond saturate

#if defined(__AVX512F__)

inline float dot(const float* a, const float* b, int32_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int32_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
  }
  __m512 t = _mm512_add_ps(s0, s1);
  t = _mm512_add_ps(t, _mm512_shuffle_f32x4(t, t, _MM_SHUFFLE(1, 0, 3, 2)));
  t = _mm512_add_ps(t, _mm512_shuffle_f32x4(t, t, _MM_SHUFFLE(2, 3, 0, 1)));
  __m128 h = _mm512_castps512_ps128(t);
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}

// e += g * w, then w += g * l1 (w read once): a target's two updates.
inline void update_pair(float g, float* w, const float* l1, float* e, int32_t n) {
  const __m512 vg = _mm512_set1_ps(g);
  for (int32_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512 vw = _mm512_maskz_loadu_ps(m, w + i);
    _mm512_mask_storeu_ps(e + i, m, _mm512_fmadd_ps(vg, vw, _mm512_maskz_loadu_ps(m, e + i)));
    _mm512_mask_storeu_ps(w + i, m, _mm512_fmadd_ps(vg, _mm512_maskz_loadu_ps(m, l1 + i), vw));
  }
}

#elif defined(__AVX2__)

inline float dot(const float* a, const float* b, int32_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int32_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  const __m256 s = _mm256_add_ps(s0, s1);
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  float t = _mm_cvtss_f32(h);
  for (; i < n; ++i) t += a[i] * b[i];
  return t;
}

inline void update_pair(float g, float* w, const float* l1, float* e, int32_t n) {
  const __m256 vg = _mm256_set1_ps(g);
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 vw = _mm256_loadu_ps(w + i);
    _mm256_storeu_ps(e + i, _mm256_fmadd_ps(vg, vw, _mm256_loadu_ps(e + i)));
    _mm256_storeu_ps(w + i, _mm256_fmadd_ps(vg, _mm256_loadu_ps(l1 + i), vw));
  }
  for (; i < n; ++i) {
    const float wi = w[i];
    e[i] += g * wi;
    w[i] = wi + g * l1[i];
  }
}

#else

inline float dot(const float* a, const float* b, int32_t n) {
  float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int k = 0; k < 4; ++k) s[k] += a[i + k] * b[i + k];
  }
  float t = (s[0] + s[2]) + (s[1] + s[3]);
  for (; i < n; ++i) t += a[i] * b[i];
  return t;
}

inline void update_pair(float g, float* __restrict w, const float* __restrict l1, float* __restrict e, int32_t n) {
  for (int32_t i = 0; i < n; ++i) {
    const float wi = w[i];
    e[i] += g * wi;
    w[i] = wi + g * l1[i];
  }
}

#endif

// y += x
inline void add(const float* __restrict x, float* __restrict y, int32_t n) {
  for (int32_t i = 0; i < n; ++i) y[i] += x[i];
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
      add(m.syn0 + static_cast<int64_t>(s[j]) * d, neu1, d);
      ++count;
    }
    if (m.cbow_mean && count > 1) {
      const auto n = static_cast<float>(count);
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
      update_pair(g, w, l1, neu1e, d);
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
    update_pair(g, w, l1, neu1e, d);
  }
  if (m.skipgram) {
    add(neu1e, m.syn0 + static_cast<int64_t>(s[first]) * d, d);
  } else {
    if (!m.cbow_mean && count > 1) {
      const auto n = static_cast<float>(count);
      for (int32_t i = 0; i < d; ++i) neu1e[i] /= n;
    }
    for (int32_t j = first; j <= last; ++j) {
      if (j != center) add(neu1e, m.syn0 + static_cast<int64_t>(s[j]) * d, d);
    }
  }
  return loss;
}

}  // namespace FP_SGD_ISA
}  // namespace fp
