// One word2vec example's SGD step, word2vec.c's arithmetic on shared float tables. sgd.cpp is
// compiled once per instruction set (baseline, AVX2 + FMA, AVX-512) into its own namespace, and
// the trainer picks the best one the CPU runs at run time: a wheel needs no -march=native.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fp {

// The model's weights (row-major [rows, dim], updated in place by every thread: Hogwild) and
// what an example's step needs to know about the method.
struct SgdModel {
  float* syn0 = nullptr;     // [V, dim] input vectors
  float* syn1neg = nullptr;  // [V, dim] output vectors of negative sampling (negative > 0)
  float* syn1 = nullptr;     // [V - 1, dim] inner nodes of hierarchical softmax (hs)
  int32_t dim = 0;
  const int8_t* codes = nullptr;   // [V, max_code_length] Huffman branches (hs)
  const int32_t* points = nullptr; // [V, max_code_length] inner nodes from the root down (hs)
  const int32_t* code_lengths = nullptr;
  int32_t max_code_length = 0;
  int32_t negative = 0;
  bool skipgram = true;
  bool hs = false;
  bool cbow_mean = true;
};

// One example of sentence s: the center s[center], its contexts s[first..last] except the
// center (skip-gram: first == last, the one input row), `negative` noise ids. Skip-gram feeds
// the context's row and predicts the center, as word2vec.c; CBOW feeds the window's mean
// (cbow_mean) or sum. Hierarchical softmax runs first, then negative sampling, both adding to
// one input error (word2vec.c's order). Logits beyond +-6 saturate (hierarchical softmax skips
// those nodes), a negative equal to the center is skipped, and every input row receives the
// whole error (divided by the window size for a CBOW sum, as gensim). `work` holds 2 * dim
// floats. With with_loss, returns the example's log-loss -log s(f+) - sum log s(-f-) (over the
// Huffman path for hs); else 0.
using UpdateFn = float (*)(const SgdModel& m, const int32_t* s, int32_t center, int32_t first, int32_t last,
                           const int32_t* negatives, float alpha, float* work, bool with_loss);

namespace baseline {
float update(const SgdModel&, const int32_t*, int32_t, int32_t, int32_t, const int32_t*, float, float*, bool);
}
namespace avx2 {
float update(const SgdModel&, const int32_t*, int32_t, int32_t, int32_t, const int32_t*, float, float*, bool);
}
namespace avx512 {
float update(const SgdModel&, const int32_t*, int32_t, int32_t, int32_t, const int32_t*, float, float*, bool);
}

// The instruction sets this build holds and this CPU runs, best last ("baseline" always).
std::vector<std::string> supported_isas();
// The update built for `isa` ("auto": the best supported); std::invalid_argument naming the
// supported ones otherwise.
UpdateFn select_update(const std::string& isa);

}  // namespace fp
