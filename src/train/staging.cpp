#include "ringtrain/train/staging.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
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
  return host_name();
}

bool same_file(int fd, const std::string& path) {
  struct stat held {}, now {};
  return ::fstat(fd, &held) == 0 && ::stat(path.c_str(), &now) == 0 && held.st_dev == now.st_dev &&
         held.st_ino == now.st_ino;
}

}  // namespace

StagedCopiesLease::StagedCopiesLease(const std::string& dir) : dir_(dir) {
  const std::string marker = (std::filesystem::path(dir) / ".in-use").string();
  // The run that removes the directory holds the lock alone while it does; a lock taken on the marker it
  // unlinked would guard nothing, so the marker is checked to be still the directory's afterwards.
  for (;;) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw Error("cannot create the staging directory '" + dir + "': " + ec.message());
    fd_ = ::open(marker.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) throw Error("cannot create '" + marker + "': " + std::strerror(errno));
    while (::flock(fd_, LOCK_SH) != 0 && errno == EINTR) {
    }
    if (same_file(fd_, marker)) return;
    ::close(fd_);
  }
}

StagedCopiesLease::~StagedCopiesLease() {
  if (fd_ >= 0) ::close(fd_);
}

void StagedCopiesLease::remove_unless_shared() {
  if (fd_ < 0) return;
  // Only what staging made: a file a user saved there (--save into TMPDIR's staging directory) stays.
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) {
    for (Split split : {Split::train, Split::val, Split::test})
      remove_staged_files((std::filesystem::path(dir_) / name_of(split)).string());
    std::error_code ignored;
    std::filesystem::remove(std::filesystem::path(dir_) / ".in-use", ignored);
    std::filesystem::remove(dir_, ignored);  // only when empty
  }
  ::close(fd_);
  fd_ = -1;
}

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

  std::shared_ptr<StagedCopiesLease> lease;
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
      if (data.remove_staged && !lease) lease = std::make_shared<StagedCopiesLease>(dir.string());
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
             std::move(lease)};
  return staged;
}

void remove_staged_copies(const StagingSummary& summary, Communicator& world) {
  world.barrier();  // no rank of the node still reads a copy
  if (summary.lease) summary.lease->remove_unless_shared();
}

}  // namespace ringtrain
