// At the end of a run that was not interrupted: the test split's score, into the result and the log.
#include "ringtrain/train/callbacks.hpp"

namespace ringtrain {

namespace {

class TestScore final : public Callback {
 public:
  explicit TestScore(const TrainContext& context) : c_(context) {}
  void on_train_end(TrainState& state, TrainResult& result) override {
    if (state.interrupted) return;
    const Timeline::Scope span(c_.timeline, Timeline::training, "evaluate test");
    auto loader = make_eval_loader(*c_.test_set, c_.config, c_.share);
    result.test = c_.mode.sum_over_ranks(c_.mode.evaluate(*loader));
    c_.log << format_split_score("test", result.test, c_.loss.metric_name(), c_.model.per_position()) << std::endl;
  }

 private:
  const TrainContext& c_;
};

}  // namespace

std::unique_ptr<Callback> make_test_score(const TrainContext& context) {
  if (!context.test_set) return nullptr;
  return std::make_unique<TestScore>(context);
}

}  // namespace ringtrain
