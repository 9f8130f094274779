// --straggler-rank R --straggler-ms T: rank R sleeps T ms after every step (once a step, not at the boundary
// that only finds an epoch over), for studies of slow workers.
#include <chrono>
#include <thread>

#include "ringtrain/train/callbacks.hpp"

namespace ringtrain {

namespace {

class Straggler final : public Callback {
 public:
  explicit Straggler(double ms) : delay_(ms) {}
  void on_step_end(TrainState&) override { std::this_thread::sleep_for(delay_); }

 private:
  std::chrono::duration<double, std::milli> delay_;
};

}  // namespace

std::unique_ptr<Callback> make_straggler(const TrainContext& context) {
  if (context.world.rank() != context.config.straggler_rank) return nullptr;
  return std::make_unique<Straggler>(context.config.straggler_ms);
}

}  // namespace ringtrain
