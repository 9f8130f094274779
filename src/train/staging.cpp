#include "ringtrain/train/staging.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/data/shard_set.hpp"
#include "ringtrain/data/stage.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/launch.hpp"

namespace ringtrain {

namespace {

std::string node_name() {
  if (const char* id = std::getenv("RINGTRAIN_NODE_ID"); id && *id) return std::string("node ") + id;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

}  // namespace

std::string agree_stage_dir(const std::string& mine, Communicator& world) {
  std::string agreed;
  for (const std::string& dir : allgather_strings(world, mine)) {
    if (dir.empty() || dir == agreed) continue;
    if (!agreed.empty())
      throw CollectiveError("ranks disagree on --stage-to: '" + agreed + "' and '" + dir + "'");
    agreed = dir;
  }
  return agreed;
}

DataSources stage_data(const DataSources& data, Communicator& world, StagingSummary& summary) {
  // Nodes in order of their first rank; a node's first rank stages for it.
  const std::vector<std::string> names = allgather_strings(world, node_name());
  std::vector<std::string> nodes;
  for (const std::string& n : names)
    if (std::find(nodes.begin(), nodes.end(), n) == nodes.end()) nodes.push_back(n);
  const std::string& mine = names[static_cast<size_t>(world.rank())];
  const int node = static_cast<int>(std::find(nodes.begin(), nodes.end(), mine) - nodes.begin());
  const bool leader = std::find(names.begin(), names.end(), mine) - names.begin() == world.rank();
  const std::filesystem::path dir = replace_placeholder(data.stage_to, 'n', std::to_string(node));

  DataSources staged = data;
  staged.dir.clear();
  StageReport total;
  int shards = 0;
  std::string failure;
  try {
    const std::pair<Split, std::string*> splits[] = {
        {Split::train, &staged.train}, {Split::val, &staged.val}, {Split::test, &staged.test}};
    for (const auto& [split, target_ptr] : splits) {
      const std::string source = data.source(split);
      std::string& target = *target_ptr;
      target = source.empty() ? "" : (dir / name_of(split)).string();
      if (source.empty()) continue;
      const std::vector<std::string> files = ShardSet::files(source);
      shards += static_cast<int>(files.size());
      if (!leader) continue;
      const StageReport r = stage_files(files, target);
      total.copied += r.copied, total.kept += r.kept, total.replaced += r.replaced, total.bytes_copied += r.bytes_copied;
    }
  } catch (const std::exception& e) {
    failure = e.what();
  }
  raise_if_any_failed(world, failure);  // also the node's other ranks' wait for its copies
  double counts[4] = {static_cast<double>(total.copied), static_cast<double>(total.kept),
                      static_cast<double>(total.replaced), static_cast<double>(total.bytes_copied)};
  world.allreduce_sum(counts, 4);
  summary = {static_cast<int>(nodes.size()), shards, static_cast<int>(counts[0]), static_cast<int>(counts[1]),
             static_cast<int>(counts[2]), static_cast<int64_t>(counts[3]), allgather_strings(world, dir.string())[0],
             dir.string(), leader};
  return staged;
}

void remove_staged_copies(const StagingSummary& summary, Communicator& world) {
  world.barrier();  // no rank of the node still reads a copy
  if (!summary.node_leader) return;
  std::error_code ignored;  // what cannot be removed is left to the site's TMPDIR clean-up
  std::filesystem::remove_all(summary.node_dir, ignored);
}

}  // namespace ringtrain
