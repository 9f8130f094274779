// A stop request (SIGTERM, SIGINT: stop_request.hpp) to any rank ends every rank at the same step boundary:
// the mode agrees on it (a collective vote in lockstep modes, a relay through the servers otherwise).
#include "ringtrain/stop_request.hpp"
#include "ringtrain/train/callbacks.hpp"

namespace ringtrain {

namespace {

class StopOnRequest final : public Callback {
 public:
  explicit StopOnRequest(ParallelMode& mode) : mode_(mode) {}
  void on_step_begin(TrainState& state) override {
    if (mode_.agree_to_stop(stop_requested())) state.interrupted = true;
  }

 private:
  ParallelMode& mode_;
};

}  // namespace

std::unique_ptr<Callback> make_stop_vote(const TrainContext& context) {
  return std::make_unique<StopOnRequest>(context.mode);
}

}  // namespace ringtrain
