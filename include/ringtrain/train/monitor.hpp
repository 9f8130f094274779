// What early stopping and --save-best watch (--monitor): a validation metric, and the best epoch by it so far.
// The rules are Keras's (EarlyStopping, ModelCheckpoint): the loss and the mean absolute error improve by
// falling, accuracy by rising; an epoch improves on the best when it beats it by more than --min-delta.
#pragma once
#include <cstdint>

#include "ringtrain/nn/loss.hpp"
#include "ringtrain/tensor/enum_names.hpp"

namespace ringtrain {

enum class Monitor { val_loss, val_accuracy, val_mae };
inline constexpr EnumNames<Monitor, 3> kMonitorNames{
    {{Monitor::val_loss, "val_loss"}, {Monitor::val_accuracy, "val_accuracy"}, {Monitor::val_mae, "val_mae"}}};
constexpr const auto& enum_names(Monitor) { return kMonitorNames; }

// Whether the task reports the monitored metric: accuracy is classification's, the mean absolute error
// regression's; the loss is both's.
bool monitor_fits(Monitor monitor, bool classification);

// The best epoch so far. A checkpoint keeps it (checkpoint.hpp), so that a resumed run goes on counting where
// the stopped one was.
struct BestEpoch {
  Monitor monitor = Monitor::val_loss;
  int64_t epoch = 0;           // from 1; 0: none yet
  double value = 0.0;          // the monitored metric in that epoch
  int64_t epochs_since = 0;    // epochs ended after it, none better by more than --min-delta

  // Takes the epoch `ended` (from 1), whose validation score is `val`: it becomes the best when it improves on
  // it (the first epoch does unless its value is NaN or infinite), else it is one more epoch without
  // improvement. True when it became the best.
  bool update(int64_t ended, const Score& val, double min_delta);
};

}  // namespace ringtrain
