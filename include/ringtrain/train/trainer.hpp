// The training loop. One step is: the next batch (the mode says where an epoch ends) -> mode.train_step
// (forward, backward, the gradients' exchange, the update) -> the step's events. Everything around the
// steps (the log, the metrics file, checkpoints, the stop vote, reports, the timeline, the saved model) is a
// callback (callback.hpp).
#pragma once
#include <iosfwd>
#include <memory>
#include <optional>
#include <vector>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/data/loader.hpp"
#include "ringtrain/nn/loss.hpp"
#include "ringtrain/nn/lr_schedule.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/parallel/parallel_mode.hpp"
#include "ringtrain/train/callback.hpp"
#include "ringtrain/train/checkpoint.hpp"
#include "ringtrain/train/config.hpp"
#include "ringtrain/train/staging.hpp"

namespace ringtrain {

class Trainer {
 public:
  // Collective over `world` (every rank of the job): validates the configuration, opens and checks the data
  // and builds the model, then checks that every rank did so and was given the same settings. Any bad input
  // on any rank throws the same CollectiveError on every rank before training starts.
  Trainer(const TrainConfig& config, Communicator& world);
  // Collective. Progress goes to `log` (give rank 0 the real stream), stall warnings to std::cerr. With
  // config.resume, continues from a checkpoint; with config.checkpoint_dir, writes them (checkpoint.hpp).
  // A stop request (stop_request.hpp) on any rank ends it at the next step boundary on every rank.
  TrainResult run(std::ostream& log);
  // A callback of the caller's, called after the built-in ones (callbacks.hpp) at every event of run().
  void add_callback(std::unique_ptr<Callback> callback) { extra_callbacks_.push_back(std::move(callback)); }
  Model& model() { return *model_; }

 private:
  struct Run;

  void open();  // this rank's part of the constructor
  std::vector<std::pair<std::string, std::string>> settings() const;
  Settings checkpoint_settings() const;  // settings() and the world size
  // Collective: loads config.resume's checkpoint (auto: the newest valid one rank 0 finds) into the host
  // model on every rank, keeping the rest in resumed_, and returns where a run of `layout` continues it
  // (resume_place). Nothing when auto finds none.
  std::optional<ResumePlace> load_checkpoint(const BatchLayout& layout, int64_t steps_per_epoch, std::ostream& log);
  std::unique_ptr<Run> start(std::ostream& log);
  bool train_epoch(Run& run);
  void end_epoch(Run& run);
  EpochRecord score_epoch(Run& run);
  std::string header(int64_t steps_per_epoch, DataShare share, const LrSchedule& lr) const;
  std::string gradient_backend() const;    // "ring", "mpi", "nccl", "parameter servers"
  std::string device_description() const;  // "1 thread", "GPU 0 (fp32)"
  // `offset`: the schedule's step less the run's (Run::schedule_offset), which moves where --steps ends it.
  LrSchedule schedule(int64_t steps_per_epoch, int replicas, int64_t offset) const;

  TrainConfig config_;  // with the data sources of staged copies when staging
  StagingSummary staging_;
  Communicator& world_;
  std::unique_ptr<SampleSource> train_set_;
  std::unique_ptr<SampleSource> val_set_, test_set_;
  Device device_ = Device::cpu;
  std::string device_note_;  // --device auto fell back to the CPU from a GPU precision
  std::string fine_tune_note_;  // the header's lines on --init-from and --freeze
  std::unique_ptr<Model> model_;
  std::unique_ptr<Loss> loss_;
  std::unique_ptr<Optimizer> optimizer_;
  std::optional<CheckpointDir> checkpoints_;
  std::optional<CheckpointLock> checkpoint_lock_;  // rank 0's, for the Trainer's life
  std::optional<CheckpointContents> resumed_;  // from load_checkpoint until the mode has taken it
  std::vector<std::unique_ptr<Callback>> extra_callbacks_;  // until run() takes them
};

}  // namespace ringtrain
