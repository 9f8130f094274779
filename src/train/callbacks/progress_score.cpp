// The score points: every score_every steps, the epoch's running training score so far and the rate since the
// point before go to TrainState::running, for the step lines, the bar and TensorBoard after this callback. One
// place takes the score, so that showing it twice (a bar and TensorBoard) costs no second wait for a GPU or
// second sum over the ranks.
#include <algorithm>
#include <chrono>

#include "ringtrain/train/callbacks.hpp"

namespace ringtrain {

namespace {

// Enough points for a smooth curve and a live bar. On a GPU each point is a wait for the device, and on many
// ranks a sum of three numbers over them: a hundred an epoch, not one a step.
constexpr int64_t kPointsPerEpoch = 100;

class RunningScore final : public Callback {
 public:
  explicit RunningScore(const TrainContext& context) : c_(context) {}

  void on_train_begin(TrainState& state) override { every_ = score_every(c_.config, state.steps_per_epoch); }

  void on_step_begin(TrainState& state) override {
    if (state.epoch_steps == 0) mark(0);  // the epoch's score (and so its sample count) starts again
  }

  void on_step_end(TrainState& state) override {
    if (every_ == 0 || state.step % every_ != 0) return;
    state.epoch_score += c_.mode.take_score();  // on a GPU: waits for the step
    // Ranks out of step cannot sum at every point: then rank 0 has its own running score.
    const Score score = c_.mode.steps_in_lockstep() ? c_.mode.sum_over_ranks(state.epoch_score) : state.epoch_score;
    // The rate since the last point, not since the epoch began: the first steps (memory first touched,
    // convolution kernels chosen) are slower, and a benchmark reads the steady lines after them.
    const double seconds = std::chrono::duration<double>(Clock::now() - since_).count();
    state.running = {state.step, score, static_cast<double>(score.samples - samples_at_) / seconds};
    mark(score.samples);
  }

 private:
  using Clock = std::chrono::steady_clock;
  void mark(int64_t samples) {
    since_ = Clock::now();
    samples_at_ = samples;
  }

  const TrainContext& c_;
  int64_t every_ = 0;
  Clock::time_point since_;  // the last point, or the epoch's start
  int64_t samples_at_ = 0;   // the epoch's samples then
};

}  // namespace

int64_t score_every(const TrainConfig& config, int64_t steps_per_epoch) {
  if (config.log_every > 0) return config.log_every;
  if (config.progress != ProgressKind::bar && config.tensorboard_dir.empty()) return 0;
  return std::max<int64_t>(1, steps_per_epoch / kPointsPerEpoch);
}

std::unique_ptr<Callback> make_running_score(const TrainContext& context) {
  return std::make_unique<RunningScore>(context);
}

}  // namespace ringtrain
