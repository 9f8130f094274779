// --early-stop-patience N: the run ends after N epochs in a row without improvement of the monitored
// validation metric (best_epoch.cpp), as Keras's EarlyStopping ends fit. Every rank decides from the same
// sums (the epoch's validation score is summed over the ranks before the callbacks see it), so every rank
// stops after the same epoch with no vote of its own. The epoch that ends the run is whole: it is scored,
// reported and checkpointed as any other, and the run's end (the test split, --save) follows with the weights
// of that last epoch; --save-best keeps the best one's.
#include <cstdio>

#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/callbacks.hpp"

namespace ringtrain {

namespace {

class EarlyStop final : public Callback {
 public:
  explicit EarlyStop(const TrainContext& context) : c_(context), patience_(*context.config.early_stop_patience) {}

  // A checkpoint of a run that early stopping ended: resuming it trains nothing more (unless the patience
  // has grown).
  void on_train_begin(TrainState& state) override {
    if (state.best.epochs_since < patience_) return;
    state.finishing = true;
    stopped_after_ = state.epochs_done;
    c_.log << "early stopping ended the checkpoint's run after epoch " << stopped_after_ << " (" << why(state.best)
           << "): nothing to train" << std::endl;
  }

  // The last epoch ends the run anyway. (An epoch --steps cuts short leaves the count as it was.)
  void on_epoch_end(TrainState& state, EpochRecord& record) override {
    if (record.epoch >= state.epochs || state.best.epochs_since < patience_) return;
    state.finishing = true;
    stopped_after_ = record.epoch;
    c_.log << "early stopping: " << why(state.best) << "; the run ends after epoch " << record.epoch << " of "
           << state.epochs << std::endl;
  }

  void on_train_end(TrainState&, TrainResult& result) override { result.early_stopped_after = stopped_after_; }

 private:
  // "val_loss has not improved on 0.3012 (epoch 4) for 3 epochs (--early-stop-patience 3)"
  std::string why(const BestEpoch& best) const {
    const std::string epochs = counted(best.epochs_since, "epoch") + " (--early-stop-patience " +
                               std::to_string(patience_) + ")";
    if (best.epoch == 0) return name_of(best.monitor) + " has not been a finite number for " + epochs;
    char value[32], by[48] = "";
    std::snprintf(value, sizeof value, "%.6g", best.value);
    if (c_.config.min_delta > 0.0) std::snprintf(by, sizeof by, " by more than %.6g", c_.config.min_delta);
    return name_of(best.monitor) + " has not improved" + by + " on " + value + " (epoch " +
           std::to_string(best.epoch) + ") for " + epochs;
  }

  const TrainContext& c_;
  int64_t patience_;
  int64_t stopped_after_ = 0;
};

}  // namespace

std::unique_ptr<Callback> make_early_stop(const TrainContext& context) {
  if (!context.config.early_stop_patience) return nullptr;
  return std::make_unique<EarlyStop>(context);
}

}  // namespace ringtrain
