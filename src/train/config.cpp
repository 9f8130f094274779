#include "ringtrain/train/config.hpp"

#include "ringtrain/data/shard_set.hpp"

namespace ringtrain {

const std::string& DataSources::explicit_source(Split split) const {
  switch (split) {
    case Split::train: return train;
    case Split::val: return val;
    case Split::test: return test;
  }
  return train;
}

std::string DataSources::source(Split split) const {
  const std::string& explicit_source = this->explicit_source(split);
  if (!explicit_source.empty()) return explicit_source;
  if (dir.empty()) return "";
  const std::string pattern = ShardSet::split_pattern(dir, split);
  return ShardSet::exists(pattern) ? pattern : "";
}

}  // namespace ringtrain
