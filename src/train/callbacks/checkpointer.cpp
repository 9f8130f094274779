// --checkpoint-dir DIR [--checkpoint-every N]: rank 0 writes a checkpoint (checkpoint.hpp) every N steps, at
// the end of the run, and when the run is interrupted. One due at a step's end is written at the next step
// boundary, once the epoch's end has been recorded if that step ended an epoch, so that the checkpoint says
// the epoch is done.
#include <cstdio>
#include <filesystem>

#include "ringtrain/train/callbacks.hpp"

namespace ringtrain {

namespace {

using Clock = Timeline::Clock;

class Checkpointer final : public Callback {
 public:
  explicit Checkpointer(const TrainContext& context) : c_(context) {}

  void on_step_end(TrainState& state) override {
    const int64_t every = c_.config.checkpoint_every;
    due_ = due_ || (every > 0 && state.step % every == 0);
  }
  // At the boundary right after an epoch's last step the epoch has not ended yet: wait for the next one.
  void on_step_begin(TrainState& state) override {
    if (due_ && state.epoch_steps < state.steps_per_epoch) save(state);
  }
  void on_train_end(TrainState& state, TrainResult&) override {
    if (saved_step_ != state.step) save(state);
  }

 private:
  // Collective (parameter servers: worker 0 and the servers).
  void save(const TrainState& state) {
    due_ = false;
    saved_step_ = state.step;
    const Clock::time_point start = Clock::now();
    // The whole model's optimizer state is rank 0's to hold; the others need only its names.
    OptimizerState optimizer{0, c_.optimizer.state_names(), {}};
    if (c_.world.rank() == 0) optimizer = zero_optimizer_state(optimizer.names, c_.model.params());
    c_.mode.settle_checks();  // a GPU's non-finite finding ends the run before a checkpoint records the step
    c_.mode.gather_state(optimizer);
    if (c_.world.rank() != 0) return;
    const std::string path = c_.checkpoints->path(state.step);
    write_checkpoint(path, c_.model, c_.targets, c_.inputs, optimizer, state.progress(), c_.checkpoint_settings);
    c_.checkpoints->prune(state.step);
    char took[64];
    std::snprintf(took, sizeof took, " (%.1f MB, %.0f ms)", static_cast<double>(std::filesystem::file_size(path)) / 1e6,
                  1e3 * seconds_since(start));
    c_.log << "  checkpoint " << path << took << std::endl;
  }

  const TrainContext& c_;
  bool due_ = false;
  int64_t saved_step_ = -1;
};

}  // namespace

std::unique_ptr<Callback> make_checkpointer(const TrainContext& context) {
  if (!context.checkpoints) return nullptr;
  return std::make_unique<Checkpointer>(context);
}

}  // namespace ringtrain
