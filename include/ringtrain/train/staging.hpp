// Node-local staging for a job (data/stage.hpp does the files): before training, one rank per node copies
// every split's shards into the node's staging directory while the node's other ranks wait, and then every
// rank reads the copies. Nodes are told apart by host name, or by RINGTRAIN_NODE_ID where it is set (tests
// simulate several nodes on one machine).
#pragma once
#include <memory>
#include <string>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/train/config.hpp"

namespace ringtrain {

// A run's hold on the default staging directory (this user's and job's, removed when done), which several
// runs of one job share: job steps started side by side (`srun ... & srun ... & wait`) stage into it at once.
// Each node's first rank holds a shared lock on <dir>/.in-use while its run reads the copies; the run that
// ends last, the only one that can then take the lock alone, removes the directory.
class StagedCopiesLease {
 public:
  explicit StagedCopiesLease(const std::string& dir);  // blocks while another run removes the directory
  ~StagedCopiesLease();
  StagedCopiesLease(const StagedCopiesLease&) = delete;
  StagedCopiesLease& operator=(const StagedCopiesLease&) = delete;
  // Removes the directory unless another run still holds it; the lease ends either way.
  void remove_unless_shared();

 private:
  std::string dir_;
  int fd_ = -1;
};

struct StagingSummary {
  int nodes = 0, shards = 0;       // shards per node
  int copied = 0, kept = 0, replaced = 0;  // over all nodes
  int64_t bytes_copied = 0;
  std::string dir;                 // rank 0's node's directory
  // The node's first rank's hold on a directory to remove at the end (DataSources::remove_staged).
  std::shared_ptr<StagedCopiesLease> lease;
};

// Collective: the staging directory every rank uses. Ranks that were given none follow those that were (the
// default comes from TMPDIR, which a launcher may set for some tasks only); ranks given different ones are
// a CollectiveError. "" when no rank stages.
std::string agree_stage_dir(const std::string& mine, Communicator& world);

// Collective. data.stage_to: the agreed directory, where "%n" becomes the node's index. Returns `data` with
// every split reading its staged copies. Any rank's failure is the same CollectiveError on every rank.
DataSources stage_data(const DataSources& data, Communicator& world, StagingSummary& summary);

// Collective, once every rank has stopped reading the copies: each node's first rank removes its node's
// staging directory, unless another run of the job still reads it.
void remove_staged_copies(const StagingSummary& summary, Communicator& world);

}  // namespace ringtrain
