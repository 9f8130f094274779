// Synthetic data (`--data synthetic:3x224x224:1000`): samples made in memory on every rank, for benchmarks
// that should measure the model and the communication rather than the file system (as Horovod's
// pytorch_synthetic_benchmark does). Values are standardised noise, float32 uniform on [-sqrt(3), sqrt(3)]
// (mean 0, variance 1, as prep's standardised data has); labels are uniform in [0, classes).
// Synthetic tokens (`--data synthetic-tokens:1024:50257`) are token data as prep --format text makes it:
// a window of T + 1 ids uniform in [0, vocabulary), x its first T and the labels its last T (the next
// tokens), so a sequence model trains on the shapes of a real next-token task.
//
// Sample i is a pure function of (seed, split, i), drawn from the counter-based generator
// (tensor/counter_rng.hpp): any rank makes any sample without the others, so N ranks see exactly the samples
// one rank sees, as with shards, and nothing is stored or sent.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "ringtrain/data/sample_source.hpp"
#include "ringtrain/data/shard_set.hpp"

namespace ringtrain {

struct SyntheticData {
  Shape sample;                    // 1 to 3 dimensions: [features] or [channels, height, width]; tokens: [T]
  int64_t classes = 0;             // tokens: the vocabulary
  std::optional<int64_t> samples{};  // per epoch; none: kSyntheticSamplesPerReplica per data-parallel replica
  bool tokens = false;             // synthetic-tokens:T:V: windows of T token ids, a label per position
  bool operator==(const SyntheticData&) const = default;
};

// The default epoch: 1280 samples per replica, 20 steps at the default --batch 64 whatever the job's size.
// A benchmark scales weakly (each replica's work per epoch stays the same, as in Horovod's), and no job is
// too large for a whole global batch. Giving the count makes a job of N ranks train on exactly the samples
// a job of one rank does.
inline constexpr int64_t kSyntheticSamplesPerReplica = 1280;
// The most values one sample may have (256 MiB of float32; 3x4096x4096 fits).
inline constexpr int64_t kMaxSyntheticValues = int64_t{1} << 26;
// The most samples an epoch may have: the loader holds an epoch's order, 8 bytes a sample (1 GiB here).
inline constexpr int64_t kMaxSyntheticSamples = int64_t{1} << 27;
// The most classes, as a shard's num_classes allows.
inline constexpr int64_t kMaxSyntheticClasses = int64_t{1} << 24;

// The flag's text for `data`: "synthetic:3x224x224:1000" or "synthetic-tokens:1024:50257", with ":N" when the
// sample count was given.
std::string synthetic_spec(const SyntheticData& data);

class SyntheticSource final : public SampleSource {
 public:
  // The samples of `split` for `seed` (each split its own); `replicas` share the global batch and set the
  // default sample count. `data` is valid (train/validate.hpp checks it).
  SyntheticSource(const SyntheticData& data, uint64_t seed, Split split, int replicas);

  const ShardMeta& meta() const override { return meta_; }
  int64_t samples() const override { return meta_.samples; }
  std::vector<int64_t> block_sizes() const override { return {meta_.samples}; }  // one block: nothing to window
  std::vector<std::string> paths() const override { return {}; }
  std::string origin() const override;
  std::unique_ptr<SampleReader> reader(int64_t window_blocks) const override;

  // Sample `index`: its meta().features() values into `x`, and its label (not token data).
  void values(int64_t index, float* x) const;
  int32_t label(int64_t index) const;
  // Token data's sample `index`: its meta().tokens ids into `x` (as floats) and their next tokens into `labels`.
  void window(int64_t index, float* x, int32_t* labels) const;

 private:
  ShardMeta meta_;  // float32, not normalised further; its path is synthetic_spec's text
  uint64_t key_;    // the seed and split's own stream
};

}  // namespace ringtrain
