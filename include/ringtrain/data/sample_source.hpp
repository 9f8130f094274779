// Where a BatchLoader's samples come from: HDF5 shards (ShardSet), samples made in memory (SyntheticSource) or a raw
// CSV read through a model's CSV transform (csv_source.hpp).
// The loader owns the order (epoch_order over the source's blocks), the slicing between ranks and the
// background thread; a source says what its samples are and writes any one of them into a batch.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ringtrain/data/shard.hpp"
#include "ringtrain/tensor/targets.hpp"

namespace ringtrain {

// Writes samples into batches, on the loader's thread (one reader per loader, so it may keep state: the
// shards it holds in memory).
class SampleReader {
 public:
  virtual ~SampleReader() = default;
  // Sample `index` of the source (its blocks concatenated) as the model sees it: meta().features() floats
  // to `x`, its label or targets to row `row` of `y`, which the loader has sized for the batch.
  virtual void read(int64_t index, float* x, Targets& y, int64_t row) = 0;
};

class SampleSource {
 public:
  virtual ~SampleSource() = default;
  // What every sample is, as a shard describes it: shape, classes or targets, and for shards their type and
  // normalisation. Its path names the source in messages.
  virtual const ShardMeta& meta() const = 0;
  virtual int64_t samples() const = 0;
  // The units an epoch's order permutes and groups into shuffle windows (epoch_order): the shards.
  virtual std::vector<int64_t> block_sizes() const = 0;
  // The files it reads (none when made in memory): what no output of the run may replace.
  virtual std::vector<std::string> paths() const = 0;
  // Where the samples are, after "N samples of [shape]": "in 4 shards", "made in memory (...)".
  virtual std::string origin() const = 0;
  // A reader that keeps at most `window_blocks` blocks in memory at once (0: all of them).
  virtual std::unique_ptr<SampleReader> reader(int64_t window_blocks) const = 0;
};

}  // namespace ringtrain
