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

// x = raw * scale + shift, with one (scale, shift) for all features or one per feature.
template <typename Raw>
void normalise(const Raw* __restrict raw, const ShardMeta& meta, int64_t features, float* __restrict x) {
  if (meta.x_scale.size() == 1 && meta.x_shift.size() == 1) {
    const float scale = meta.x_scale[0], shift = meta.x_shift[0];
    for (int64_t f = 0; f < features; ++f) x[f] = static_cast<float>(raw[f]) * scale + shift;
    return;
  }
  const bool per_scale = meta.x_scale.size() > 1, per_shift = meta.x_shift.size() > 1;
  for (int64_t f = 0; f < features; ++f)
    x[f] = static_cast<float>(raw[f]) * meta.x_scale[per_scale ? static_cast<size_t>(f) : 0] +
           meta.x_shift[per_shift ? static_cast<size_t>(f) : 0];
}

class ShardReader final : public SampleReader {
 public:
  ShardReader(const ShardSet& set, size_t capacity) : set_(set), capacity_(capacity) {
    offsets_.push_back(0);
    for (const ShardMeta& s : set_.shards()) offsets_.push_back(offsets_.back() + s.samples);
  }

  void read(int64_t index, float* x, Targets& y, int64_t row) override {
    const ShardMeta& meta = set_.meta();
    const auto after = std::upper_bound(offsets_.begin(), offsets_.end(), index);
    const size_t s = static_cast<size_t>(after - offsets_.begin() - 1);
    const int64_t i = index - offsets_[s], features = meta.features();
    const ShardData& d = shard(s);
    const size_t first = static_cast<size_t>(i * features);
    if (meta.x_type == PixelType::u8) normalise(d.x_u8.data() + first, meta, features, x);
    else normalise(d.x_f32.data() + first, meta, features, x);
    if (meta.classification()) {
      y.labels[static_cast<size_t>(row)] = static_cast<int32_t>(d.labels[static_cast<size_t>(i)]);
      return;
    }
    for (int64_t t = 0; t < meta.target_dim; ++t)
      y.values[row * meta.target_dim + t] =
          d.targets[static_cast<size_t>(i * meta.target_dim + t)] * meta.y_scale + meta.y_shift;
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

ShardSet ShardSet::open(const std::string& source) {
  ShardSet set;
  for (const std::string& p : files(source)) {
    set.shards_.push_back(read_shard_meta(p));
    check_compatible(set.shards_.front(), set.shards_.back());
    set.samples_ += set.shards_.back().samples;
  }
  return set;
}

}  // namespace ringtrain
