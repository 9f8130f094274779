// Checkpoints: everything a run needs to continue as if never stopped, in one HDF5 file per checkpoint,
// <dir>/step-<step>.h5, readable by h5py. It is a model file (model_file.hpp: `ringtrain eval` scores it)
// with the training state added:
//   /<layer>/<param>, /<layer>/<buffer>          the model, as a saved model has it
//   /optimizer/<layer>/<param>/<state>           optimizer state ("momentum", "exp_avg", ...)
//   /rng/<layer>/stream<k>                       random stream positions (dropout), int64[1]
//   root attributes                              checkpoint (format), step, epoch, pass, pass_sample
//                                                (the global sample position), pass_batch, replicas,
//                                                global_batch, optimizer_steps, settings ("--flag=value"
//                                                lines), monitor, best_epoch, best_value, epochs_since_best
//                                                (the best epoch so far by --monitor: monitor.hpp)
// Files are sealed and written atomically (model_file.hpp write_sealed_hdf5: built in memory, then temporary
// file, fsync, rename, directory fsync): a job killed mid-write leaves the previous checkpoints as they were.
// The newest `keep` are kept.
//
// The model and the optimizer state are whole (every stage's layers, named by parameter), and the data's place
// is the job's (the pass and the samples of it taken, all replicas together), so a run on another number of
// ranks can continue a checkpoint: resume_place says where, layout_refusal where it cannot.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ringtrain/data/shard.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/nn/optimizer.hpp"
#include "ringtrain/tensor/targets.hpp"
#include "ringtrain/train/monitor.hpp"

namespace ringtrain {

inline constexpr const char* kCheckpointFormat = "ringtrain-checkpoint-1";

// How a run's steps take the job's samples: `replicas` of the model (data parallel: the ranks; a pipeline: its
// replicas; parameter servers: the workers) split each global batch of `global_batch` samples.
struct BatchLayout {
  int64_t replicas = 0;      // 0: not recorded (a checkpoint from before the global sample position was)
  int64_t global_batch = 0;
  bool recorded() const { return replicas > 0; }
  bool operator==(const BatchLayout&) const = default;
};
// "2 replicas x --batch 8": a recorded layout in the words of the flags; `unit` names a replica ("worker").
std::string describe(const BatchLayout& layout, std::string_view unit = "replica");

// Where training stands at a checkpoint.
struct TrainProgress {
  int64_t step = 0;        // steps taken (of whatever size: a resumed run may take other global batches)
  int64_t epoch = 0;       // epochs finished
  int64_t pass = 0;        // the data stream: the pass over the data (its order shuffled by --seed and the pass)
  int64_t pass_batch = 0;  // the global batch of the pass the next step reads: pass_sample / global_batch
  BestEpoch best;          // what early stopping and --save-best have seen (none before it was kept)
  // The global sample position: the samples of the pass's order taken so far, all replicas together, where the
  // next global batch starts. The same place on any number of ranks. -1: not recorded (pass_batch places it).
  int64_t pass_sample = -1;
  BatchLayout layout;      // the run's that wrote it
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

// Where a run continues a checkpoint.
struct ResumePlace {
  int64_t pass = 0, sample = 0;  // the data stream starts at position `sample` of pass `pass`'s order
  int64_t epoch_steps = 0;       // the steps of the epoch under way counted as taken (of this run's size)
  int64_t schedule_step = 0;     // the learning-rate schedule's step for the checkpoint's step
};

// Where a run of layout `now`, `steps_per_epoch` steps per epoch over `samples` training samples, continues
// `at`; an Error naming `path` when `at` is no place in such a run (read_checkpoint checks what needs no run:
// nothing negative, no epoch beyond the step). `epochs_are_passes`: an epoch is a pass over the data (every
// mode but parameter servers, whose servers count an epoch in steps): the epoch's steps and the schedule then
// follow the sample position, which another global batch reaches in other steps; with the same global batch
// that is the step count. Otherwise they follow the step count, and the global batch must be the checkpoint's.
ResumePlace resume_place(const TrainProgress& at, const BatchLayout& now, int64_t steps_per_epoch, int64_t samples,
                         bool epochs_are_passes, const std::string& path);

// Why a run of layout `now` cannot continue a checkpoint of layout `saved`, as one line naming both; "" when it
// can. Data parallel and a pipeline's replicas may change in number and in global batch; parameter servers
// (`servers`) count epochs and staleness in every worker's steps, so they continue only on as many workers
// with the same global batch. A layout not recorded is left to checkpoint_mismatch.
std::string layout_refusal(const BatchLayout& saved, const BatchLayout& now, bool servers);

// The settings that must match for a run to continue a checkpoint (the model, the data, the order of the
// samples, the optimizer, the mode and its stages): the first that differs, as "--flag is 'a' in the
// checkpoint but 'b' in this run", or "" when none does. Others (--epochs, --lr, ...) may change on resume;
// so may --batch and the number of ranks (layout_refusal says where not), except for a checkpoint that does
// not record its layout (`layout_recorded` false), which holds no global sample position: it resumes only on
// as many ranks with the same --batch.
std::string checkpoint_mismatch(const Settings& saved, const Settings& now, bool layout_recorded);

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
