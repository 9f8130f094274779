// --timeline FILE: a span per step on the timeline's steps row (and --timeline-steps' window), and at the end
// of a run that was not interrupted, every rank's spans go to rank 0, which writes one Chrome/Perfetto trace
// (comm/timeline.hpp). The other spans are recorded where the work is done.
#include "ringtrain/train/callbacks.hpp"
#include "ringtrain/train/output_file.hpp"

namespace ringtrain {

namespace {

class TimelineFile final : public Callback {
 public:
  explicit TimelineFile(const TrainContext& context) : c_(context) {}
  // A parameter server takes no steps: its window follows the steps of the pushes it applies. After an
  // epoch's last step no step follows before the epoch's evaluation, which belongs with that last step.
  void on_step_begin(TrainState& state) override {
    if (!c_.mode.takes_steps()) return;
    if (state.epoch_steps < state.steps_per_epoch) c_.timeline->begin_step(state.step + 1);
    step_began_ = Timeline::Clock::now();
  }
  void on_step_end(TrainState& state) override {
    if (!c_.mode.takes_steps()) return;
    c_.timeline->span(Timeline::steps, "step " + std::to_string(state.step), step_began_, Timeline::Clock::now());
  }
  void on_train_end(TrainState& state, TrainResult&) override {
    if (state.interrupted) return;
    if (c_.world.rank() != 0) return c_.timeline->write(c_.world, nullptr);
    write_text_atomically(c_.config.timeline, [&](std::ostream& out) { c_.timeline->write(c_.world, &out); });
    c_.log << "wrote timeline to " << c_.config.timeline << std::endl;
  }

 private:
  const TrainContext& c_;
  Timeline::Clock::time_point step_began_;
};

}  // namespace

std::unique_ptr<Callback> make_timeline_file(const TrainContext& context) {
  if (!context.timeline) return nullptr;
  return std::make_unique<TimelineFile>(context);
}

}  // namespace ringtrain
