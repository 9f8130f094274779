// The training loop's events (train/callback.hpp): when each is called, what a callback sees, and how one
// ends the run, against a run whose shape is known (steps per epoch, epochs, --steps).
#include <gtest/gtest.h>

#include <sstream>
#include <thread>

#include "ringtrain/comm/timeline.hpp"
#include "ringtrain/train/trainer.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

// Writes down every event it sees, and may end the run at a step.
class Recorder final : public Callback {
 public:
  struct Seen {
    int train_begin = 0, step_begin = 0, step_end = 0, train_end = 0;
    std::vector<int64_t> epoch_ends;  // the record's step at each epoch end
    std::vector<int64_t> steps;       // state.step at each step end
    bool last_interrupted = false;
    int64_t result_epochs = -1;
  };
  Recorder(Seen& seen, int64_t finish_at = 0, int64_t interrupt_at = 0)
      : seen_(seen), finish_at_(finish_at), interrupt_at_(interrupt_at) {}

  void on_train_begin(TrainState&) override { ++seen_.train_begin; }
  void on_step_begin(TrainState& state) override {
    ++seen_.step_begin;
    if (interrupt_at_ > 0 && state.step == interrupt_at_) state.interrupted = true;
  }
  void on_step_end(TrainState& state) override {
    ++seen_.step_end;
    seen_.steps.push_back(state.step);
    if (finish_at_ > 0 && state.step == finish_at_) state.finishing = true;
  }
  void on_epoch_end(TrainState&, EpochRecord& record) override { seen_.epoch_ends.push_back(record.step); }
  void on_train_end(TrainState& state, TrainResult& result) override {
    ++seen_.train_end;
    seen_.last_interrupted = state.interrupted;
    seen_.result_epochs = static_cast<int64_t>(result.epochs.size());
  }

 private:
  Seen& seen_;
  int64_t finish_at_, interrupt_at_;
};

class Callbacks : public ::testing::Test {
 protected:
  // 96 samples, batch 8: 12 steps an epoch.
  void SetUp() override { test::write_classification_shard(dir_.path("train-00000.h5"), 96, {4}, 3, 1); }
  TrainResult train(Recorder::Seen& seen, int64_t finish_at = 0, int64_t interrupt_at = 0) {
    Trainer trainer(test::train_config(dir_.path(), {.model = "flatten,linear(out)", .batch = 8, .epochs = 3}),
                    test::world());
    trainer.add_callback(std::make_unique<Recorder>(seen, finish_at, interrupt_at));
    std::ostringstream log;
    return trainer.run(log);
  }
  test::TempDir dir_;
};

TEST_F(Callbacks, EveryEventInOrderForAWholeRun) {
  Recorder::Seen seen;
  const TrainResult r = train(seen);
  EXPECT_EQ(seen.train_begin, 1);
  EXPECT_EQ(seen.step_end, 36);
  // One boundary before each step, and the one per epoch at which its data turns out to be over.
  EXPECT_EQ(seen.step_begin, 36 + 3);
  EXPECT_EQ(seen.epoch_ends, (std::vector<int64_t>{12, 24, 36}));
  EXPECT_EQ(seen.steps.front(), 1);
  EXPECT_EQ(seen.steps.back(), 36);
  EXPECT_EQ(seen.train_end, 1);
  EXPECT_FALSE(seen.last_interrupted);
  EXPECT_EQ(seen.result_epochs, 3);
  EXPECT_EQ(r.steps, 36);
}

// As --steps or early stopping do: the epoch under way still ends (scored, reported), then the run.
TEST_F(Callbacks, FinishingEndsTheRunAfterTheEpochEnds) {
  Recorder::Seen seen;
  const TrainResult r = train(seen, 15);
  EXPECT_EQ(r.steps, 15);
  EXPECT_EQ(seen.epoch_ends, (std::vector<int64_t>{12, 15}));
  EXPECT_EQ(seen.train_end, 1);
  EXPECT_FALSE(r.stopped_early);
  EXPECT_GT(r.epochs.back().train.samples, 0);
}

// As a stop request does: no epoch end, no test score, but the run's end is told.
TEST_F(Callbacks, InterruptingEndsTheJobAtTheBoundary) {
  Recorder::Seen seen;
  const TrainResult r = train(seen, 0, 20);
  EXPECT_EQ(r.steps, 20);
  EXPECT_TRUE(r.stopped_early);
  EXPECT_EQ(seen.epoch_ends, (std::vector<int64_t>{12}));
  EXPECT_EQ(seen.train_end, 1);
  EXPECT_TRUE(seen.last_interrupted);
}

// A callback that interrupts keeps the ones after it from that event.
TEST(CallbackList, AnInterruptStopsTheEventsDispatch) {
  Recorder::Seen first, second;
  CallbackList list;
  list.add(std::make_unique<Recorder>(first, 0, 5));
  list.add(std::make_unique<Recorder>(second));
  list.add(nullptr);  // a callback the run did not ask for
  TrainState state;
  state.step = 4;
  list.step_begin(state);
  EXPECT_EQ(second.step_begin, 1);
  state.step = 5;
  list.step_begin(state);
  EXPECT_TRUE(state.interrupted);
  EXPECT_EQ(first.step_begin, 2);
  EXPECT_EQ(second.step_begin, 1);
  TrainResult result;
  list.train_end(state, result);  // already interrupted: the end reaches everyone
  EXPECT_EQ(second.train_end, 1);
}

// --timeline-steps 3:4: spans of steps 3 and 4 and what follows step 4 until step 5 begins (an epoch's
// evaluation) are kept; the rest, also from another thread, is dropped.
TEST(Timeline, KeepsOnlyItsWindowOfSteps) {
  Timeline timeline(3, 4);
  const auto now = Timeline::Clock::now();
  for (int64_t step = 1; step <= 6; ++step) {
    timeline.begin_step(step);
    timeline.span(Timeline::steps, "step " + std::to_string(step), now, now);
    std::thread([&] { timeline.span(Timeline::communication, "ALLREDUCE " + std::to_string(step), now, now); }).join();
    if (step == 4) timeline.span(Timeline::training, "evaluate val", now, now);
  }
  const std::string json = timeline.events_json(0);
  for (const char* kept : {"step 3", "step 4", "ALLREDUCE 3", "ALLREDUCE 4", "evaluate val"})
    EXPECT_NE(json.find(std::string("\"") + kept + "\""), std::string::npos) << kept;
  for (const char* dropped : {"step 2", "step 5", "ALLREDUCE 1", "ALLREDUCE 6"})
    EXPECT_EQ(json.find(std::string("\"") + dropped + "\""), std::string::npos) << dropped;
  Timeline whole;  // no window: everything
  whole.span(Timeline::training, "load batch", now, now);
  EXPECT_NE(whole.events_json(0).find("load batch"), std::string::npos);
}

}  // namespace
}  // namespace ringtrain
