#include "ringtrain/data/shard_set.hpp"

#include <glob.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <map>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"

namespace ringtrain {

namespace {

std::vector<std::string> glob_paths(const std::string& pattern) {
  glob_t g{};
  std::vector<std::string> out;
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  globfree(&g);
  std::sort(out.begin(), out.end());
  return out;
}

class ShardReader final : public SampleReader {
 public:
  ShardReader(const ShardSet& set, size_t capacity) : set_(set), capacity_(capacity) {
    offsets_.push_back(0);
    for (const ShardMeta& s : set_.shards()) offsets_.push_back(offsets_.back() + s.samples);
  }

  void read(int64_t index, float* x, Targets& y, int64_t row) override {
    const auto after = std::upper_bound(offsets_.begin(), offsets_.end(), index);
    const size_t s = static_cast<size_t>(after - offsets_.begin() - 1);
    const ShardData& d = shard(s);
    sample_into_batch(set_.meta(), d, index - offsets_[s], x, y, row);
  }

 private:
  const ShardData& shard(size_t index) {
    auto it = cache_.find(index);
    if (it != cache_.end()) return it->second;
    // The oldest shard loaded is never needed again once a whole window is held.
    if (cache_.size() >= capacity_ && !cache_order_.empty()) {
      cache_.erase(cache_order_.front());
      cache_order_.pop_front();
    }
    cache_order_.push_back(index);
    return cache_.emplace(index, read_shard_data(set_.shards()[index])).first->second;
  }

  const ShardSet& set_;
  size_t capacity_;
  std::vector<int64_t> offsets_;  // first index of each shard, plus the total
  std::map<size_t, ShardData> cache_;
  std::deque<size_t> cache_order_;
};

}  // namespace

std::string ShardSet::split_pattern(const std::string& dir, Split split) {
  return (std::filesystem::path(dir) / (name_of(split) + "-*.h5")).string();
}

bool ShardSet::exists(const std::string& pattern) { return !glob_paths(pattern).empty(); }

std::vector<std::string> ShardSet::files(const std::string& source) {
  std::error_code ec;
  std::vector<std::string> paths;
  if (std::filesystem::is_directory(source, ec)) {
    paths = glob_paths((std::filesystem::path(source) / "*.h5").string());
    if (paths.empty()) throw Error("no shards (*.h5) in directory '" + source + "'");
  } else if (source.find_first_of("*?[") != std::string::npos) {
    paths = glob_paths(source);
    if (paths.empty()) throw Error("no shards match '" + source + "'");
  } else {
    paths = {source};
  }
  return paths;
}

std::vector<int64_t> ShardSet::block_sizes() const {
  std::vector<int64_t> sizes;
  for (const ShardMeta& s : shards_) sizes.push_back(s.samples);
  return sizes;
}

std::vector<std::string> ShardSet::paths() const {
  std::vector<std::string> out;
  for (const ShardMeta& s : shards_) out.push_back(s.path);
  return out;
}

std::string ShardSet::origin() const { return "in " + counted(static_cast<int64_t>(shards_.size()), "shard"); }

std::unique_ptr<SampleReader> ShardSet::reader(int64_t window_blocks) const {
  return std::make_unique<ShardReader>(*this, window_blocks > 0 ? static_cast<size_t>(window_blocks) : shards_.size());
}

ShardSet ShardSet::open(const std::string& source, TargetsNeeded targets) {
  ShardSet set;
  for (const std::string& p : files(source)) {
    set.shards_.push_back(read_shard_meta(p));
    if (set.shards_.back().features_only && targets == TargetsNeeded::yes)
      throw Error("shard '" + p + "' holds features only, no targets (prep --like of a CSV without the target "
                  "column): only predict reads it");
    check_compatible(set.shards_.front(), set.shards_.back());
    set.samples_ += set.shards_.back().samples;
  }
  return set;
}

}  // namespace ringtrain
