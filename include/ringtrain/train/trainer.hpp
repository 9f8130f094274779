// The training loop. One batch travels: loader -> model.forward -> loss -> model.backward -> optimizer.
#pragma once
#include <iosfwd>
#include <memory>
#include <vector>

#include "ringtrain/data/loader.hpp"
#include "ringtrain/nn/loss.hpp"
#include "ringtrain/nn/lr_schedule.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/train/config.hpp"
#include "ringtrain/train/metrics_log.hpp"

namespace ringtrain {

struct TrainResult {
  std::vector<EpochRecord> epochs;
  Score test;  // samples == 0 when there is no test split
  int64_t steps = 0;
};

// Scores every batch of a split in evaluation mode.
Score evaluate(Model& model, Loss& loss, BatchLoader& loader);

class Trainer {
 public:
  // Opens and checks the data and builds the model; throws Error on any bad input before training starts.
  explicit Trainer(const TrainConfig& config);
  TrainResult run(std::ostream& log);
  Model& model() { return *model_; }

 private:
  std::unique_ptr<BatchLoader> eval_loader(const ShardSet& split) const;
  LrSchedule schedule(int64_t steps_per_epoch) const;

  TrainConfig config_;
  ShardSet train_set_;
  std::unique_ptr<ShardSet> val_set_, test_set_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Loss> loss_;
  std::unique_ptr<Optimizer> optimizer_;
};

}  // namespace ringtrain
