#include "ringtrain/train/callback.hpp"

#include "ringtrain/train/callbacks.hpp"

namespace ringtrain {

TrainProgress TrainState::progress() const {
  TrainProgress at{step, epochs_done, stream->pass(), 0, best, stream->sample(), layout};
  // A pass taken to its last batch, whose epoch has ended, is done: the next step reads the next pass. Where
  // the epoch has not ended (a stop at the boundary after its last step), the place stays at the pass's end,
  // so that a resumed run first ends that epoch. (Parameter servers, whose epochs are not passes, read on
  // from either place alike.)
  if (stream->pass_done() && epoch_steps < steps_per_epoch) ++at.pass, at.pass_sample = 0;
  at.pass_batch = at.pass_sample / layout.global_batch;  // for a reader of the place in batches
  return at;
}

void CallbackList::add(std::unique_ptr<Callback> callback) {
  if (callback) callbacks_.push_back(std::move(callback));
}

template <typename Event>
void CallbackList::each(TrainState& state, Event event) {
  const bool interrupted_before = state.interrupted;
  for (const auto& callback : callbacks_) {
    event(*callback);
    if (state.interrupted && !interrupted_before) return;
  }
}

void CallbackList::train_begin(TrainState& s) {
  each(s, [&](Callback& c) { c.on_train_begin(s); });
}
void CallbackList::step_begin(TrainState& s) {
  each(s, [&](Callback& c) { c.on_step_begin(s); });
}
void CallbackList::step_end(TrainState& s) {
  each(s, [&](Callback& c) { c.on_step_end(s); });
}
void CallbackList::epoch_end(TrainState& s, EpochRecord& record) {
  each(s, [&](Callback& c) { c.on_epoch_end(s, record); });
}
void CallbackList::train_end(TrainState& s, TrainResult& result) {
  each(s, [&](Callback& c) { c.on_train_end(s, result); });
}

CallbackList make_callbacks(const TrainContext& context) {
  // The order matters where two write to the log or one reads what another adds: the stop vote first (an
  // interrupted boundary runs nothing else); a checkpoint due at a step's end is written at the next
  // boundary, and the final one before the closing lines; the mode's report, the L1 penalty (in the losses)
  // and the best epoch (which watches val_loss) before the CSV and the epoch line that print them; the
  // running score before the step's line, bar and TensorBoard point that show it; early stopping and the best
  // model after the epoch's line, which their lines follow; the step limit after the step's line.
  using Factory = std::unique_ptr<Callback> (*)(const TrainContext&);
  constexpr Factory factories[] = {make_stop_vote,     make_checkpointer, make_straggler,    make_mode_report,
                                   make_l1_penalty,    make_best_epoch,   make_metrics_csv,  make_running_score,
                                   make_progress_log,  make_progress_bar, make_tensorboard,  make_early_stop,
                                   make_best_model,    make_step_limit,   make_test_score,   make_model_saver,
                                   make_timeline_file};
  CallbackList list;
  for (Factory make : factories) list.add(make(context));
  return list;
}

std::unique_ptr<BatchLoader> make_eval_loader(const SampleSource& split, const TrainConfig& config, DataShare share) {
  LoaderConfig c;
  c.batch = std::max<int64_t>(config.batch, 256);
  c.shuffle = false;
  c.drop_last = false;
  c.rank = share.replica;
  c.world = share.replicas;
  c.window_shards = config.data.window_shards;
  c.prefetch = config.data.prefetch;
  return std::make_unique<BatchLoader>(split, c);
}

}  // namespace ringtrain
