// One split of a dataset (train, val or test): the shards that hold it, each checked, all agreeing.
#pragma once
#include <string>
#include <vector>

#include "ringtrain/data/sample_source.hpp"
#include "ringtrain/data/shard.hpp"
#include "ringtrain/tensor/enum_names.hpp"

namespace ringtrain {

enum class Split { train, val, test };
inline constexpr EnumNames<Split, 3> kSplitNames{{{Split::train, "train"}, {Split::val, "val"}, {Split::test, "test"}}};
constexpr const auto& enum_names(Split) { return kSplitNames; }

// Whether a split's samples must come with targets: training and evaluation need them, predict does not
// (a shard of features only, ShardMeta::features_only).
enum class TargetsNeeded { yes, no };

class ShardSet final : public SampleSource {
 public:
  // source: one shard file, a directory (every *.h5 in it) or a glob pattern; shards sorted by path.
  static ShardSet open(const std::string& source, TargetsNeeded targets = TargetsNeeded::yes);
  // The shard files a source names, sorted; throws Error when there are none.
  static std::vector<std::string> files(const std::string& source);
  // "<dir>/<split>-*.h5", the layout `ringtrain prep` writes.
  static std::string split_pattern(const std::string& dir, Split split);
  static bool exists(const std::string& pattern);

  const std::vector<ShardMeta>& shards() const { return shards_; }
  const ShardMeta& meta() const override { return shards_.front(); }
  int64_t samples() const override { return samples_; }
  std::vector<int64_t> block_sizes() const override;
  std::vector<std::string> paths() const override;
  std::string origin() const override;
  // Reads whole shards as the order reaches them, keeping a shuffle window of them (a rank's positions only
  // move forward through the windows), and normalises each sample into the batch.
  std::unique_ptr<SampleReader> reader(int64_t window_blocks) const override;

 private:
  std::vector<ShardMeta> shards_;
  int64_t samples_ = 0;
};

}  // namespace ringtrain
