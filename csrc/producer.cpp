#include "producer.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <stdexcept>
#include <string>

#include <unistd.h>

namespace fp {

namespace {

std::string gib(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f GiB", bytes / (1 << 30));
  return text;
}

// The machine's RAM, or less where a cgroup (a container, a batch job) limits this process:
// cgroup v2's memory.max or v1's memory.limit_in_bytes ("max" or absent: no limit). As
// fastpretrain.checks.host_memory_bytes.
double host_memory() {
  double memory = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream file(path);
    double limit = 0;
    if (file >> limit && limit > 0) memory = std::min(memory, limit);
  }
  return memory;
}

// The batches alive at once (per worker: its queue, the one held back, the one being
// filled; two on the consumer's side) must fit in half of the machine's memory.
void check_batch_memory(const ProducerOptions& o) {
  const StreamOptions& s = o.stream;
  const int64_t width = s.skipgram ? 1 : 2 * static_cast<int64_t>(s.window);
  const int64_t per_example = 1 + width + (s.skipgram ? 0 : 1) + s.negative;
  const double batch = 4.0 * static_cast<double>(o.batch_size) * static_cast<double>(per_example);
  const double total = batch * (static_cast<double>(o.workers) * (o.queue_depth + 2) + 2);
  const double memory = host_memory();
  if (memory > 0 && total > memory / 2) {
    throw std::length_error("batch_size: " + std::to_string(o.batch_size) + " examples of " +
                            std::to_string(per_example) + " ints (window " + std::to_string(s.window) + ", " +
                            std::to_string(s.negative) + " negatives) buffered by " + std::to_string(o.workers) +
                            " workers take " + gib(total) + ", more than half of this machine's " + gib(memory) +
                            "; lower batch_size or workers");
  }
}

}  // namespace

Producer::Producer(const int32_t* ids, int64_t n, std::vector<double> keep, AliasTable noise, ProducerOptions opt)
    : ids_(ids), n_(n), keep_(std::move(keep)), noise_(std::move(noise)), opt_(opt) {
  check_range("window", opt_.stream.window, 1, kMaxWindow);
  check_range("negative", opt_.stream.negative, 0, kMaxNegative);
  check_range("batch_size", opt_.batch_size, 1, kMaxBatchSize);
  check_range("epochs", opt_.epochs, 1, INT32_MAX);
  check_range("workers", opt_.workers, 1, kMaxWorkers);
  check_range("max_sentence_length", opt_.stream.max_sentence_length, 1, INT32_MAX);
  check_range("queue_depth", opt_.queue_depth, 1, kMaxQueueDepth);
  check_batch_memory(opt_);
  if (opt_.stream.negative > 0 && noise_.size() != keep_.size()) {
    throw std::invalid_argument("the noise distribution must cover the vocabulary");
  }
  words_per_epoch_ = count_words(ids_, n_, static_cast<int32_t>(keep_.size()));
  consumed_words_.assign(opt_.workers, 0);
  for (int32_t w = 0; w < opt_.workers; ++w) {
    queues_.push_back(std::make_unique<Queue>());
    active_.push_back(w);
  }
  for (int32_t w = 0; w < opt_.workers; ++w) threads_.emplace_back(&Producer::run, this, w);
}

Producer::~Producer() {
  stop_ = true;
  for (auto& q : queues_) {
    std::lock_guard<std::mutex> lock(q->mutex);
    q->space.notify_all();
  }
  for (auto& t : threads_) t.join();
}

bool Producer::push(int w, std::unique_ptr<Batch> batch) {
  Queue& q = *queues_[w];
  std::unique_lock<std::mutex> lock(q.mutex);
  q.space.wait(lock, [&] { return stop_ || q.batches.size() < static_cast<size_t>(opt_.queue_depth); });
  if (stop_) return false;
  q.batches.push_back(std::move(batch));
  q.ready.notify_one();
  return true;
}

// Fills batches for one worker and pushes each sealed one to its queue.
class Producer::Worker {
 public:
  Worker(Producer& p, int w)
      : p_(p), opt_(p.opt_), w_(w), rng_(worker_seed(opt_.seed, w)), negatives_(opt_.stream.negative) {
    ctx_width_ = opt_.stream.skipgram ? 1 : 2 * opt_.stream.window;
    fresh();
  }

  // Returns false when the producer is stopping.
  bool run() {
    const StreamOptions& so = opt_.stream;
    const int64_t lo = p_.n_ * w_ / opt_.workers, hi = p_.n_ * (w_ + 1) / opt_.workers;
    std::vector<int32_t> sentence;
    sentence.reserve(static_cast<size_t>(std::min<int64_t>(so.max_sentence_length, hi - lo)));
    for (epoch_ = 0; epoch_ < opt_.epochs; ++epoch_) {
      int64_t pos = lo;
      while (pos < hi) {
        if (p_.stop_) return false;
        pos = read_sentence(p_.ids_, pos, hi, p_.keep_.data(), so.max_sentence_length, rng_, sentence, &words_read_);
        const auto add = [&](int32_t i, int32_t first, int32_t last, const int32_t* negatives) {
          return add_example(sentence, i, first, last, negatives);
        };
        if (!for_each_example(sentence, so, p_.noise_, rng_, negatives_, add)) return false;
      }
    }
    epoch_ = opt_.epochs - 1;
    if (batch_->size > 0 && !seal()) return false;
    if (!held_) return true;
    held_->words_done = words_read_;  // the last batch accounts for every word read
    held_->epoch = epoch_;
    return p_.push(w_, std::move(held_));
  }

  int64_t words_read() const { return words_read_; }

 private:
  // Write example k of the batch (center s[i], contexts s[first..last] but i), and seal the batch when full.
  bool add_example(const std::vector<int32_t>& s, int32_t i, int32_t first, int32_t last, const int32_t* negatives) {
    const int64_t k = batch_->size;
    batch_->centers[k] = s[i];
    int32_t* ctx = &batch_->contexts[k * ctx_width_];
    int32_t c = 0;
    for (int32_t j = first; j <= last; ++j) {
      if (j != i) ctx[c++] = s[j];
    }
    if (!opt_.stream.skipgram) batch_->lengths[k] = c;
    std::copy(negatives, negatives + opt_.stream.negative, batch_->negatives.begin() + k * opt_.stream.negative);
    return ++batch_->size < opt_.batch_size || seal();
  }

  bool seal() {
    const int64_t k = batch_->size;
    batch_->centers.resize(k);
    batch_->contexts.resize(k * ctx_width_);
    if (!opt_.stream.skipgram) batch_->lengths.resize(k);
    batch_->negatives.resize(k * opt_.stream.negative);
    batch_->words_done = words_read_;
    batch_->epoch = epoch_;
    batch_->worker = w_;
    // Hold the newest batch back one step, so the final one can be stamped with the
    // words read after it was full (a trailing one-word sentence makes no example).
    const bool ok = !held_ || p_.push(w_, std::move(held_));
    held_ = std::move(batch_);
    fresh();
    return ok;
  }

  void fresh() {
    const int64_t bs = opt_.batch_size;
    batch_ = std::make_unique<Batch>();
    batch_->centers.resize(bs);
    batch_->contexts.assign(bs * ctx_width_, -1);
    if (!opt_.stream.skipgram) batch_->lengths.resize(bs);
    batch_->negatives.resize(bs * opt_.stream.negative);
  }

  Producer& p_;
  const ProducerOptions& opt_;
  const int w_;
  SplitMix64 rng_;
  std::vector<int32_t> negatives_;
  int64_t ctx_width_;
  int64_t words_read_ = 0;
  int32_t epoch_ = 0;
  std::unique_ptr<Batch> batch_;
  std::unique_ptr<Batch> held_;
};

void Producer::run(int w) {
  Queue& q = *queues_[w];
  int64_t words = 0;
  try {
    Worker worker(*this, w);
    worker.run();
    words = worker.words_read();
  } catch (...) {
    std::lock_guard<std::mutex> lock(q.mutex);
    q.error = std::current_exception();
  }
  std::lock_guard<std::mutex> lock(q.mutex);
  q.final_words = words;
  q.done = true;
  q.ready.notify_all();
}

std::unique_ptr<Batch> Producer::next(int timeout_ms, bool* timed_out) {
  *timed_out = false;
  while (!active_.empty()) {
    if (cursor_ >= active_.size()) cursor_ = 0;
    const int32_t w = active_[cursor_];
    Queue& q = *queues_[w];
    std::unique_lock<std::mutex> lock(q.mutex);
    const bool ready = q.ready.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                        [&] { return !q.batches.empty() || q.done; });
    if (!ready) {
      *timed_out = true;
      return nullptr;
    }
    if (!q.batches.empty()) {
      std::unique_ptr<Batch> batch = std::move(q.batches.front());
      q.batches.pop_front();
      q.space.notify_one();
      consumed_words_[w] = batch->words_done;
      cursor_ = (cursor_ + 1) % active_.size();
      return batch;
    }
    if (q.error) {
      active_.clear();
      std::rethrow_exception(q.error);
    }
    consumed_words_[w] = q.final_words;  // also counts a worker that made no batch at all
    active_.erase(active_.begin() + static_cast<std::ptrdiff_t>(cursor_));
  }
  return nullptr;
}

double Producer::progress() const {
  const double total = static_cast<double>(opt_.epochs) * static_cast<double>(words_per_epoch_);
  if (total <= 0) return 1.0;
  return static_cast<double>(std::accumulate(consumed_words_.begin(), consumed_words_.end(), int64_t{0})) / total;
}

}  // namespace fp
