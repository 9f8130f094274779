// --tensorboard DIR: rank 0 writes a TensorBoard event file there (event_file.hpp), its x axis the step:
// - at each score point (progress_score.cpp: every --log-every steps, else about 100 times an epoch), the
//   epoch's running training score and the learning rate and throughput: step/loss, step/<metric>, step/lr,
//   step/img_per_s;
// - at each epoch's end (at its last step), the figures of its line and of the --metrics row: epoch/loss,
//   epoch/<metric>, epoch/val_loss and epoch/val_<metric> (with a validation split), epoch/lr,
//   epoch/img_per_s, epoch/seconds.
// The file is flushed as each epoch ends and as the run ends (also when stopped), so that a TensorBoard
// watching DIR follows the run. A resumed run adds a file of its own beside the first, which starts with a
// SessionLog START one step past the checkpoint: TensorBoard then drops the interrupted run's points after the
// checkpoint (the steps the resumed run trains again), and the plot shows each step once.
#include "ringtrain/train/callbacks.hpp"
#include "ringtrain/train/event_file.hpp"

namespace ringtrain {

namespace {

class TensorBoard final : public Callback {
 public:
  explicit TensorBoard(const TrainContext& context)
      : file_(context.config.tensorboard_dir), metric_(context.loss.metric_name()), rate_(tag_word(context)) {}

  void on_train_begin(TrainState& state) override {
    if (state.step > 0) file_.start_session(state.step + 1);  // START at S drops points from S on: keep S's
  }

  void on_step_end(TrainState& state) override {
    if (state.running.step != state.step) return;
    const Score& s = state.running.score;
    file_.add(state.step, {{"step/loss", s.loss()},
                           {"step/" + metric_, s.metric()},
                           {"step/lr", state.lr},
                           {"step/" + rate_, state.running.samples_per_s}});
  }

  void on_epoch_end(TrainState&, EpochRecord& r) override {
    Scalars epoch = {{"epoch/loss", r.train.loss()}, {"epoch/" + metric_, r.train.metric()}};
    if (r.val.samples) epoch.insert(epoch.end(), {{"epoch/val_loss", r.val.loss()}, {"epoch/val_" + metric_, r.val.metric()}});
    epoch.insert(epoch.end(), {{"epoch/lr", r.lr}, {"epoch/" + rate_, r.images_per_s}, {"epoch/seconds", r.epoch_seconds}});
    file_.add(r.step, epoch);
    file_.flush();
  }

  void on_train_end(TrainState&, TrainResult&) override { file_.flush(); }

 private:
  // "img/s" as one word of a tag, "img_per_s": a slash in a tag makes TensorBoard nest it a level deeper.
  static std::string tag_word(const TrainContext& context) {
    std::string unit = throughput_unit(context);
    const size_t slash = unit.find('/');
    return slash == std::string::npos ? unit : unit.replace(slash, 1, "_per_");
  }

  EventFile file_;
  std::string metric_, rate_;
};

}  // namespace

std::unique_ptr<Callback> make_tensorboard(const TrainContext& context) {
  if (context.config.tensorboard_dir.empty() || context.world.rank() != 0) return nullptr;
  return std::make_unique<TensorBoard>(context);
}

}  // namespace ringtrain
