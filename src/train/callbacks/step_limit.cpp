// --steps N: the run finishes after step N (the epoch under way still ends, is scored and reported).
#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/train/callbacks.hpp"

namespace ringtrain {

namespace {

class StepLimit final : public Callback {
 public:
  StepLimit(int64_t steps, ParallelMode& mode, Communicator& world) : steps_(steps), mode_(mode), world_(world) {}
  void on_step_end(TrainState& state) override {
    if (state.step >= steps_) state.finishing = true;
  }
  // Ranks out of step reach the limit in different epochs: any rank's finish is everyone's.
  void on_epoch_end(TrainState& state, EpochRecord&) override {
    if (!mode_.steps_in_lockstep()) state.finishing = agree_any(world_, state.finishing);
  }

 private:
  int64_t steps_;
  ParallelMode& mode_;
  Communicator& world_;
};

}  // namespace

std::unique_ptr<Callback> make_step_limit(const TrainContext& context) {
  if (context.config.max_steps <= 0) return nullptr;
  return std::make_unique<StepLimit>(context.config.max_steps, context.mode, context.world);
}

}  // namespace ringtrain
