#include "trainer.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

namespace fp {

Trainer::Trainer(const int32_t* ids, int64_t n, std::vector<double> keep, AliasTable noise, SgdModel model,
                 UpdateFn update, TrainerOptions opt)
    : ids_(ids), n_(n), keep_(std::move(keep)), noise_(std::move(noise)), model_(model), update_(update),
      opt_(opt), counters_(static_cast<size_t>(std::max(opt.workers, 1))) {
  check_range("window", opt_.stream.window, 1, INT32_MAX);
  check_range("negative", opt_.stream.negative, 0, INT32_MAX);
  check_range("epochs", opt_.epochs, 1, INT32_MAX);
  check_range("workers", opt_.workers, 1, 1024);
  check_range("max_sentence_length", opt_.stream.max_sentence_length, 1, INT32_MAX);
  check_range("loss_every", opt_.loss_every, 1, INT32_MAX);
  check_range("dim", model_.dim, 1, INT32_MAX);
  if (model_.negative != opt_.stream.negative) throw std::invalid_argument("negative: the model and stream differ");
  if (opt_.stream.negative > 0 && (noise_.size() != keep_.size() || model_.syn1neg == nullptr)) {
    throw std::invalid_argument("negative > 0 needs syn1neg and a noise distribution over the vocabulary");
  }
  if (model_.hs && (model_.syn1 == nullptr || model_.codes == nullptr)) {
    throw std::invalid_argument("hs needs syn1 and the Huffman codes");
  }
  if (!model_.hs && opt_.stream.negative == 0) throw std::invalid_argument("negative: 0 needs hs");
  words_per_epoch_ = count_words(ids_, n_, static_cast<int32_t>(keep_.size()));
  alpha_ = opt_.alpha;
}

Trainer::~Trainer() { stop(); }

void Trainer::start() {
  if (!threads_.empty()) throw std::logic_error("the trainer has started already");
  running_ = opt_.workers;
  for (int32_t w = 0; w < opt_.workers; ++w) threads_.emplace_back(&Trainer::run, this, w);
}

bool Trainer::wait(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mutex_);
  const bool done = finished_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return running_ == 0; });
  if (done && error_) {
    const std::exception_ptr error = error_;
    error_ = nullptr;
    std::rethrow_exception(error);
  }
  return done;
}

void Trainer::stop() {
  stop_ = true;
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

TrainerProgress Trainer::progress() const {
  TrainerProgress p;
  p.words = words_.load(std::memory_order_relaxed);
  for (const Counters& c : counters_) {
    p.examples += c.examples.load(std::memory_order_relaxed);
    p.loss += c.loss.load(std::memory_order_relaxed);
  }
  p.alpha = alpha_.load(std::memory_order_relaxed);
  return p;
}

void Trainer::run(int w) {
  try {
    walk(w);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = std::current_exception();
    stop_ = true;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  --running_;
  finished_.notify_all();
}

// Worker w's slice and random stream are the producer's (producer.cpp), so one worker replays
// Producer(workers=1)'s examples and negatives exactly. alpha is set after each sentence is read,
// from the words all threads have read by then, this sentence's included.
void Trainer::walk(int w) {
  const StreamOptions& so = opt_.stream;
  const int64_t lo = n_ * w / opt_.workers, hi = n_ * (w + 1) / opt_.workers;
  const double total = static_cast<double>(opt_.epochs) * static_cast<double>(words_per_epoch_);
  SplitMix64 rng(worker_seed(opt_.seed, w));
  std::vector<int32_t> sentence, negatives(static_cast<size_t>(so.negative));
  sentence.reserve(static_cast<size_t>(std::min<int64_t>(so.max_sentence_length, hi - lo)));
  std::vector<float> work(2 * static_cast<size_t>(model_.dim));
  Counters& counters = counters_[w];
  double loss = 0.0;
  int64_t examples = 0, seen = 0;
  for (int32_t epoch = 0; epoch < opt_.epochs; ++epoch) {
    int64_t pos = lo;
    while (pos < hi) {
      if (stop_.load(std::memory_order_relaxed)) return;
      int64_t read = 0;
      pos = read_sentence(ids_, pos, hi, keep_.data(), so.max_sentence_length, rng, sentence, &read);
      const int64_t words = words_.fetch_add(read, std::memory_order_relaxed) + read;
      const double a = std::max(opt_.alpha * (1.0 - static_cast<double>(words) / total), opt_.min_alpha);
      alpha_.store(a, std::memory_order_relaxed);
      const auto alpha = static_cast<float>(a);
      const int32_t* s = sentence.data();
      for_each_example(sentence, so, noise_, rng, negatives,
                       [&](int32_t i, int32_t first, int32_t last, const int32_t* neg) {
                         const bool with_loss = seen++ % opt_.loss_every == 0;
                         const float l = update_(model_, s, i, first, last, neg, alpha, work.data(), with_loss);
                         if (with_loss) {
                           loss += l;
                           ++examples;
                         }
                         return true;
                       });
      counters.loss.store(loss, std::memory_order_relaxed);
      counters.examples.store(examples, std::memory_order_relaxed);
    }
  }
}

}  // namespace fp
