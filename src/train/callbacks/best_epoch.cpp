// Early stopping and --save-best watch a validation metric (--monitor): this keeps the best epoch by it in the
// run's state, where they act on it and a checkpoint records it, and in two columns of the metrics CSV.
#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/train/callbacks.hpp"

namespace ringtrain {

namespace {

class BestEpochTracker final : public Callback {
 public:
  explicit BestEpochTracker(const TrainContext& context) : c_(context) {}

  // A resumed run goes on from the checkpoint's best, unless that was by another metric.
  void on_train_begin(TrainState& state) override {
    const Monitor monitor = c_.config.monitor;
    if (state.best.epoch > 0 && state.best.monitor != monitor) {
      c_.log << "the checkpoint's best epoch was by " << name_of(state.best.monitor) << "; --monitor "
             << name_of(monitor) << " counts afresh" << std::endl;
      state.best = {};
    }
    state.best.monitor = monitor;
  }

  // An epoch that --steps cuts short is not done (a resumed run finishes it and scores it then), and does not
  // count.
  void on_epoch_end(TrainState& state, EpochRecord& record) override {
    if (!cut_short(state)) state.best.update(record.epoch, record.val, c_.config.min_delta);
    record.columns.emplace_back("best_epoch", std::to_string(state.best.epoch));
    record.columns.emplace_back("epochs_without_improvement", std::to_string(state.best.epochs_since));
  }

  void on_train_end(TrainState& state, TrainResult& result) override { result.best = state.best; }

 private:
  // Alike on every rank, as what follows (--save-best's gather) is collective: ranks out of step learn it
  // from each other, as the step limit's agreement does.
  bool cut_short(const TrainState& state) const {
    if (c_.config.max_steps == 0) return false;
    const bool cut = state.finishing && state.epoch_steps < state.steps_per_epoch;
    return c_.mode.steps_in_lockstep() ? cut : agree_any(c_.world, cut);
  }

  const TrainContext& c_;
};

}  // namespace

std::unique_ptr<Callback> make_best_epoch(const TrainContext& context) {
  if (!context.config.early_stop_patience && context.config.save_best.empty()) return nullptr;
  return std::make_unique<BestEpochTracker>(context);
}

}  // namespace ringtrain
