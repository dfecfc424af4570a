// Multi-threaded producer of word2vec training batches, word2vec.c's sampling:
// per-epoch frequent-word subsampling, sentences of at most max_sentence_length
// kept words (never crossing a line end), a dynamic window b ~ U[1, window] per
// center (b = window without shrink_windows), and optional negatives from the noise alias table.
//
// Worker w owns the contiguous slice [n*w/W, n*(w+1)/W) of the id stream and its
// own SplitMix64 stream; batches are handed out round-robin over workers, so the
// sequence of batches depends only on the seed and the worker count.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "sampling.h"
#include "stream.h"

namespace fp {

// Upper bounds of the options: each keeps one batch well inside int32/int64 arithmetic;
// the memory the batches take together is checked against the machine's memory as well.
constexpr int64_t kMaxBatchSize = int64_t{1} << 24;
constexpr int32_t kMaxWindow = 1 << 20;
constexpr int32_t kMaxNegative = 1 << 20;
constexpr int32_t kMaxWorkers = 1024;
constexpr int32_t kMaxQueueDepth = 1024;

struct ProducerOptions {
  StreamOptions stream;
  int64_t batch_size = 16384;  // pairs (skip-gram) or examples (CBOW) per batch
  int32_t epochs = 1;
  int32_t workers = 1;
  uint64_t seed = 1;
  int32_t queue_depth = 4;     // ready batches buffered per worker
};

struct Batch {
  int64_t size = 0;
  std::vector<int32_t> centers;    // [size]
  std::vector<int32_t> contexts;   // skip-gram: [size]; CBOW: [size, 2*window], -1 padded
  std::vector<int32_t> lengths;    // CBOW: context count per example
  std::vector<int32_t> negatives;  // [size, negative]
  int64_t words_done = 0;          // words the worker had read when it sealed this batch
  int32_t epoch = 0;
  int32_t worker = 0;
};

class Producer {
 public:
  // `ids` must outlive the producer; `keep` holds one keep probability per word.
  Producer(const int32_t* ids, int64_t n, std::vector<double> keep, AliasTable noise, ProducerOptions opt);
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Next batch in round-robin order; waits at most timeout_ms (returns nullptr with
  // *timed_out set). Returns nullptr with *timed_out false once all workers are done.
  // Rethrows an exception raised in a worker.
  std::unique_ptr<Batch> next(int timeout_ms, bool* timed_out);

  int64_t words_per_epoch() const { return words_per_epoch_; }
  // Fraction of epochs * words_per_epoch read so far, counted over consumed batches.
  double progress() const;

 private:
  struct Queue {
    std::mutex mutex;
    std::condition_variable ready, space;
    std::deque<std::unique_ptr<Batch>> batches;
    bool done = false;
    int64_t final_words = 0;  // words the worker read in all
    std::exception_ptr error;
  };
  class Worker;

  void run(int w);
  bool push(int w, std::unique_ptr<Batch> batch);

  const int32_t* ids_;
  int64_t n_;
  std::vector<double> keep_;
  AliasTable noise_;
  ProducerOptions opt_;
  int64_t words_per_epoch_ = 0;

  std::vector<std::unique_ptr<Queue>> queues_;
  std::vector<int32_t> active_;          // workers not yet exhausted, in round-robin order
  size_t cursor_ = 0;
  std::vector<int64_t> consumed_words_;  // per worker, from its last consumed batch
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

}  // namespace fp
