#include "ringtrain/train/config.hpp"

#include <filesystem>

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

std::string DataSources::why_no_source(Split split) const {
  const std::string name = name_of(split), what = split == Split::train ? "training" : name;
  if (dir.empty()) return "no " + what + " data: give --data DIR or --" + name + " FILES";
  const std::string none = "no " + what + " shards (" + name + "-*.h5) in '" + dir + "'";
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return none + ": the directory does not exist";
  if (!std::filesystem::is_directory(dir, ec)) return none + ": it is not a directory";
  return none;
}

}  // namespace ringtrain
