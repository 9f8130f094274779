// --timeline FILE: at the end of a run that was not interrupted, every rank's spans go to rank 0, which
// writes one Chrome/Perfetto trace (comm/timeline.hpp). The spans themselves are recorded as the run goes.
#include "ringtrain/train/callbacks.hpp"
#include "ringtrain/train/output_file.hpp"

namespace ringtrain {

namespace {

class TimelineFile final : public Callback {
 public:
  explicit TimelineFile(const TrainContext& context) : c_(context) {}
  void on_train_end(TrainState& state, TrainResult&) override {
    if (state.interrupted) return;
    if (c_.world.rank() != 0) return c_.timeline->write(c_.world, nullptr);
    write_text_atomically(c_.config.timeline, [&](std::ostream& out) { c_.timeline->write(c_.world, &out); });
    c_.log << "wrote timeline to " << c_.config.timeline << std::endl;
  }

 private:
  const TrainContext& c_;
};

}  // namespace

std::unique_ptr<Callback> make_timeline_file(const TrainContext& context) {
  if (!context.timeline) return nullptr;
  return std::make_unique<TimelineFile>(context);
}

}  // namespace ringtrain
