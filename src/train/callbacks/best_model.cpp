// --save-best FILE: whenever an epoch is the best so far by --monitor (best_epoch.cpp), the model as that
// epoch left it is written as --save writes the final one (rank 0, after the mode's gather, atomically), as
// Keras's ModelCheckpoint(save_best_only=True) does. A failed write keeps the previous best and ends the run.
#include <cstdio>

#include "ringtrain/train/callbacks.hpp"

namespace ringtrain {

namespace {

class BestModel final : public Callback {
 public:
  explicit BestModel(const TrainContext& context) : c_(context) {}
  void on_epoch_end(TrainState& state, EpochRecord& record) override {
    const BestEpoch& best = state.best;
    if (best.epoch != record.epoch) return;
    save_gathered_model(c_, c_.config.save_best);
    char value[32];
    std::snprintf(value, sizeof value, "%.6g", best.value);
    c_.log << "  best so far (" << name_of(best.monitor) << " " << value << "): saved to " << c_.config.save_best
           << std::endl;
  }

 private:
  const TrainContext& c_;
};

}  // namespace

std::unique_ptr<Callback> make_best_model(const TrainContext& context) {
  if (context.config.save_best.empty()) return nullptr;
  return std::make_unique<BestModel>(context);
}

}  // namespace ringtrain
