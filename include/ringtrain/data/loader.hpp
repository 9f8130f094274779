// Batches for one rank, assembled on a background thread so HDF5 reads and normalisation (or making synthetic
// samples) overlap compute.
//
// The sample order is defined for the whole job, not per rank: each epoch permutes the shards (a source's
// blocks: sample_source.hpp), groups them into windows of `window_shards` (the shuffle buffer; 0 = all
// shards), and permutes the samples inside each window. Global batch k is positions [k*B, (k+1)*B) of that
// order with B = batch * world, and rank r takes the contiguous slice [k*B + r*batch, k*B + (r+1)*batch). So
// N ranks with batch b see exactly the samples one rank with batch N*b sees, and a rank reads only the
// shards its slices touch. Because the order does not depend on the number of ranks, a place in it (the pass
// and the samples of it taken, all ranks together) is the same place on any number of ranks: a resumed run
// starts its pass there (start_epoch), whatever its global batch.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "ringtrain/data/augment.hpp"
#include "ringtrain/data/sample_source.hpp"
#include "ringtrain/tensor/targets.hpp"

namespace ringtrain {

struct Batch {
  Tensor x;       // [n, sample_shape...], normalised
  Targets y;
  int64_t size() const { return x.rank() ? x.dim(0) : 0; }
};

struct LoaderConfig {
  int64_t batch = 64;         // per rank
  bool shuffle = true;
  bool drop_last = true;      // training: every rank gets the same number of full batches
  uint64_t seed = 0;
  int rank = 0, world = 1;
  int64_t window_shards = 0;  // shuffle window in shards; 0 = all shards
  int prefetch = 4;           // batches ready ahead of the training thread; 0: each read when it is asked for
  Augmentation augment;       // training only: applied to each sample as it is read (augment.hpp)
};

// The job-wide sample order for an epoch: indices into the shards' concatenation.
std::vector<int64_t> epoch_order(const std::vector<int64_t>& shard_sizes, bool shuffle, uint64_t seed, int64_t epoch,
                                 int64_t window_shards);

class BatchLoader {
 public:
  BatchLoader(const SampleSource& data, LoaderConfig config);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  int64_t batches_per_epoch() const { return batches_from(0); }  // this rank's
  // This rank's batches of an epoch started at position `first_sample` of its order.
  int64_t batches_from(int64_t first_sample) const;
  int64_t global_batch() const { return config_.batch * config_.world; }  // samples a step takes, all ranks together
  // Starts producing the given epoch from position `first_sample` of its order (a resumed run skips the
  // samples it trained on; global batch k then starts at first_sample + k * global_batch()), stopping any
  // epoch still in progress.
  void start_epoch(int64_t epoch, int64_t first_sample = 0);
  // Moves the next batch into `batch` (its old buffers are recycled); false at the end of the epoch.
  // Rethrows any error the reader thread hit, naming the file.
  bool next(Batch& batch);

 private:
  void produce(int64_t epoch, int64_t first_sample);
  void stop();
  void assemble(const std::vector<int64_t>& order, int64_t begin, int64_t end, int64_t epoch, Batch& out);

  const SampleSource& data_;
  LoaderConfig config_;
  std::unique_ptr<SampleReader> reader_;  // used by the worker thread only
  std::optional<SampleAugmenter> augmenter_;  // likewise; empty without augmentation

  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> ready_, spare_;
  bool finished_ = false, stopping_ = false;
  bool wanted_ = false;  // the training thread waits for a batch (what the reader waits for at prefetch 0)
  std::exception_ptr error_;
};

}  // namespace ringtrain
