#include "ringtrain/data/shard_set.hpp"

#include <glob.h>

#include <algorithm>
#include <filesystem>

#include "ringtrain/tensor/error.hpp"

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
