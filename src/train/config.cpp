#include "ringtrain/train/config.hpp"

#include "ringtrain/data/shard_set.hpp"

namespace ringtrain {

std::string DataSources::source(const std::string& split) const {
  const std::string& explicit_source = split == "train" ? train : split == "val" ? val : test;
  if (!explicit_source.empty()) return explicit_source;
  if (dir.empty()) return "";
  const std::string pattern = ShardSet::split_pattern(dir, split);
  return ShardSet::exists(pattern) ? pattern : "";
}

}  // namespace ringtrain
