// What happens around the training loop's steps and epochs (the log, the metrics file, checkpoints, the
// stop vote, reports, the timeline, the saved model) is a Callback, as in Keras and LBANN: the loop
// (trainer.cpp) only takes batches, trains on them and calls the events. A new behaviour around training is a
// new callback, not another branch in the loop. The built-in ones are made by make_callbacks (callbacks.hpp).
#pragma once
#include <memory>
#include <vector>

#include "ringtrain/data/batch_stream.hpp"
#include "ringtrain/nn/loss.hpp"
#include "ringtrain/train/checkpoint.hpp"
#include "ringtrain/train/metrics_log.hpp"

namespace ringtrain {

// Where the run stands; the loop keeps it and the callbacks read it. A callback ends the run by setting
// `finishing` (after this step: the epoch's end and the run's end still happen, as for --steps or early
// stopping) or `interrupted` (at this step boundary: the job ends with no further collective but a
// checkpoint, as for a stop request).
struct TrainState {
  int64_t step = 0;             // steps taken
  int64_t epoch = 0;            // the epoch under way, from 0
  int64_t epochs_done = 0;      // finished epochs (an epoch cut short by --steps is not finished)
  int64_t epochs = 0;           // the run's --epochs
  int64_t epoch_steps = 0;      // steps taken in this epoch
  int64_t steps_per_epoch = 0;  // of this rank's data share
  BatchLayout layout;           // how the steps take the samples (replicas, global batch)
  double lr = 0.0;              // of the last step
  Score epoch_score;            // this rank's running score since the epoch began (Loss::take_score adds to it)
  BestEpoch best;               // by --monitor, kept while early stopping or --save-best watch it
  bool finishing = false, interrupted = false;
  const BatchStream* stream = nullptr;
  // The epoch's running training score at the last score point (progress_score.cpp), summed over the ranks
  // where they step together, and the samples a second since the point before; what the step lines, the bar
  // and TensorBoard show. `step` is that point's (-1: none yet).
  struct RunningScore {
    int64_t step = -1;
    Score score;
    double samples_per_s = 0.0;
  } running;

  // The place a checkpoint records: the steps and epochs done, and where the job's data stream continues.
  TrainProgress progress() const;
};

struct TrainResult {
  std::vector<EpochRecord> epochs;
  Score test;  // samples == 0 when there is no test split
  int64_t steps = 0;
  double seconds = 0.0;  // training, from the first step to the last epoch's end (no test split)
  bool stopped_early = false;  // a stop request (SIGTERM) ended it at a step boundary, after a checkpoint
  BestEpoch best;                // the best epoch by --monitor (epoch 0: none watched)
  int64_t early_stopped_after = 0;  // early stopping ended the run after this epoch (from 1); 0: it did not
};

class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin(TrainState&) {}
  // At each step boundary, before the step's batch is taken: also the boundary at which an epoch's steps
  // turn out to be over.
  virtual void on_step_begin(TrainState&) {}
  virtual void on_step_end(TrainState&) {}
  // Collective. After an epoch's train and validation scores are in `record`; callbacks may add to it (the
  // mode's report, columns) for the ones after them.
  virtual void on_epoch_end(TrainState&, EpochRecord&) {}
  // Collective. After the last epoch, or at the boundary where the run was interrupted.
  virtual void on_train_end(TrainState&, TrainResult&) {}
};

// Calls each event on every callback in order. Once one sets `interrupted`, the rest of that event's
// callbacks are not called: the job ends at this boundary.
class CallbackList {
 public:
  void add(std::unique_ptr<Callback> callback);
  void train_begin(TrainState& state);
  void step_begin(TrainState& state);
  void step_end(TrainState& state);
  void epoch_end(TrainState& state, EpochRecord& record);
  void train_end(TrainState& state, TrainResult& result);

 private:
  template <typename Event>
  void each(TrainState& state, Event event);

  std::vector<std::unique_ptr<Callback>> callbacks_;
};

}  // namespace ringtrain
