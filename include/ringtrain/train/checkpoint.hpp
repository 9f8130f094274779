// Checkpoints: everything a run needs to continue as if never stopped, in one HDF5 file per checkpoint,
// <dir>/step-<step>.h5, readable by h5py. It is a model file (model_file.hpp: `ringtrain eval` scores it)
// with the training state added:
//   /<layer>/<param>, /<layer>/<buffer>          the model, as a saved model has it
//   /optimizer/<layer>/<param>/<state>           optimizer state ("momentum", "exp_avg", ...)
//   /rng/<layer>/stream<k>                       random stream positions (dropout), int64[1]
//   root attributes                              checkpoint (format), step, epoch, pass, pass_batch,
//                                                optimizer_steps, settings ("--flag=value" lines),
//                                                monitor, best_epoch, best_value, epochs_since_best (the
//                                                best epoch so far by --monitor: monitor.hpp)
// Files are sealed and written atomically (model_file.hpp write_sealed_hdf5: built in memory, then temporary
// file, fsync, rename, directory fsync): a job killed mid-write leaves the previous checkpoints as they were.
// The newest `keep` are kept.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ringtrain/data/shard.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/nn/optimizer.hpp"
#include "ringtrain/tensor/targets.hpp"
#include "ringtrain/train/monitor.hpp"

namespace ringtrain {

inline constexpr const char* kCheckpointFormat = "ringtrain-checkpoint-1";

// Where training stands at a checkpoint.
struct TrainProgress {
  int64_t step = 0;        // steps taken
  int64_t epoch = 0;       // epochs finished
  int64_t pass = 0;        // rank 0's data stream: the pass over its share of the data
  int64_t pass_batch = 0;  // and the batch within it that the next step reads
  BestEpoch best;          // what early stopping and --save-best have seen (none before it was kept)
};

using Settings = std::vector<std::pair<std::string, std::string>>;

struct CheckpointContents {
  TargetSpace targets;  // what the model's outputs are (a regression's target standardisation)
  TrainProgress progress;
  OptimizerState optimizer;
  Settings settings;
};

// Writes `model` (on the host or the device), `optimizer` (the whole model's) and the rest to `path`,
// atomically.
void write_checkpoint(const std::string& path, Model& model, const TargetSpace& targets, const InputTransform& inputs,
                      const OptimizerState& optimizer, const TrainProgress& progress, const Settings& settings);

// Throws Error naming the file unless `path` is a complete checkpoint (a valid HDF5 file with the format
// attribute) whose seal, or for a file from before seals every dataset's checksum, matches; reads the whole file once,
// for picking the newest valid one.
void check_checkpoint(const std::string& path);

// Loads the checkpoint into `model` (on the host; same architecture, else an Error naming the difference)
// and returns the rest. The optimizer state is named after the model's parameters: `state_names` are the
// ones the run's optimizer keeps.
CheckpointContents read_checkpoint(const std::string& path, Model& model, const std::vector<std::string>& state_names);

// Error naming `path` unless `at` is a place in a run of `steps_per_epoch` steps per epoch (read_checkpoint
// checks what needs no run: nothing negative, no epoch beyond the step).
void check_progress_fits(const TrainProgress& at, int64_t steps_per_epoch, const std::string& path);

// The settings that must match for a run to continue a checkpoint (the model, the data, the batch, the
// optimizer, the layout of ranks): the first that differs, as "--flag is 'a' in the checkpoint, 'b' here",
// or "" when none does. Others (--epochs, --lr, ...) may change on resume.
std::string checkpoint_mismatch(const Settings& saved, const Settings& now);

class CheckpointDir {
 public:
  CheckpointDir(std::string dir, int keep) : dir_(std::move(dir)), keep_(keep) {}
  const std::string& dir() const { return dir_; }
  std::string path(int64_t step) const;  // <dir>/step-000000001234.h5
  // The checkpoint files there, newest (highest step) first.
  std::vector<std::string> list() const;
  // The newest that check_checkpoint accepts, or "" when there is none; each one passed over gets a line on
  // `log` saying why.
  std::string newest_valid(std::ostream& log) const;
  // The newest checkpoint there when its step is above `step` ("" when none is): a run starting at `step`
  // would interleave its checkpoints with those.
  std::string newest_after(int64_t step) const;
  // Removes all but the newest `keep` up to `written_step`, the checkpoint just written.
  void prune(int64_t written_step) const;

 private:
  std::string dir_;
  int keep_;
};

// An exclusive lock (flock) on <dir>/.ringtrain.lock while a job writes checkpoints there: a second job given
// the same directory fails at once, instead of the two overwriting and pruning each other's checkpoints. The
// kernel drops it with the process, so a killed job leaves no stale lock. On a file system without flock
// (some parallel file systems mounted without it) the directory is used unlocked.
class CheckpointLock {
 public:
  explicit CheckpointLock(const std::string& dir);  // Error when another process holds it
  ~CheckpointLock();
  CheckpointLock(const CheckpointLock&) = delete;
  CheckpointLock& operator=(const CheckpointLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace ringtrain
