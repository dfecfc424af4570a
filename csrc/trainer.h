// word2vec.c's training loop on the CPU: each thread walks its slice of the id stream (the
// producer's walk, stream.h, so the same seed gives the same examples) and applies every
// example's SGD step at once to the shared tables, without locks (Hogwild). The learning rate
// decays linearly with the words all threads have read, floored at min_alpha.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "sampling.h"
#include "sgd.h"
#include "stream.h"

namespace fp {

struct TrainerOptions {
  StreamOptions stream;
  int32_t epochs = 1;
  int32_t workers = 1;
  uint64_t seed = 1;
  double alpha = 0.025;
  double min_alpha = 0.0000025;
  int32_t loss_every = 1;  // the loss of every loss_every-th example is summed (1: all)
};

// What the threads have done so far; read while they run.
struct TrainerProgress {
  int64_t words = 0;     // words read (before subsampling), all threads, all epochs
  int64_t examples = 0;  // examples whose loss was summed
  double loss = 0.0;     // sum of those losses
  double alpha = 0.0;    // the learning rate set last
};

class Trainer {
 public:
  // `ids` and the model's tables must outlive the trainer; `keep` holds one keep probability per
  // word and `noise` draws the negatives (unused when negative == 0).
  Trainer(const int32_t* ids, int64_t n, std::vector<double> keep, AliasTable noise, SgdModel model,
          UpdateFn update, TrainerOptions opt);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Starts the threads (once).
  void start();
  // Waits up to timeout_ms for the threads to finish; true once they have all finished. Rethrows
  // an exception raised in a thread.
  bool wait(int timeout_ms);
  // Asks the threads to stop at their next sentence and joins them.
  void stop();

  TrainerProgress progress() const;
  int64_t words_per_epoch() const { return words_per_epoch_; }

 private:
  // One thread's counters, on their own cache line.
  struct alignas(64) Counters {
    std::atomic<int64_t> examples{0};
    std::atomic<double> loss{0.0};
  };

  void run(int w);
  void walk(int w);

  const int32_t* ids_;
  int64_t n_;
  std::vector<double> keep_;
  AliasTable noise_;
  SgdModel model_;
  UpdateFn update_;
  TrainerOptions opt_;
  int64_t words_per_epoch_ = 0;

  std::vector<Counters> counters_;
  alignas(64) std::atomic<int64_t> words_{0};
  std::atomic<double> alpha_{0.0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable finished_;
  int32_t running_ = 0;
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
};

}  // namespace fp
