// Non-finite gradients on N ranks: every rank of a pipeline decides alike (one stage's bad gradient stops or
// skips every stage's step), and a skipping run goes on to the end in every mode.
#include <gtest/gtest.h>

#include <sstream>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/trainer.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

// lr 1e30 overflows the weights at the first update, so later gradients are infinite or NaN.
TrainConfig overflowing(const std::string& data) {
  return test::train_config(data, {.model = "flatten,linear(8),relu,linear(8),relu,linear(out)",
                                   .lr = 1e30f,
                                   .momentum = 0.0f});
}

TEST(NonFinite, EveryPipelineStageStopsAtTheSameStepNamingTheSameParameter) {
  Communicator& world = test::world();
  test::SharedDataset data({1, 4, 4});
  TrainConfig c = overflowing(data.path());
  c.parallel.pipeline.stages = world.size() <= 3 ? world.size() : 2;
  c.parallel.pipeline.micro_batches = 2;
  if (world.size() % c.parallel.pipeline.stages != 0) GTEST_SKIP() << "world not divisible by the stages";
  std::ostringstream quiet;
  std::string message;
  try {
    Trainer(c, world).run(quiet);
  } catch (const CollectiveError& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("non-finite gradient (NaN or infinity) in linear"), std::string::npos) << message;
  // The same message on every rank: the same step and parameter.
  const std::vector<std::string> all = allgather_strings(world, message);
  for (const std::string& m : all) EXPECT_EQ(m, all[0]);
}

// Parameter-server workers are at different steps and find it alone: the job halts as for a signal, and then
// every rank, servers too, raises the lowest bad worker's error (rank 0 prints it once), no checkpoint written.
TEST(NonFinite, AParameterServerWorkersStopEndsEveryRankAlike) {
  Communicator& world = test::world();
  if (world.size() < 2) GTEST_SKIP() << "needs a worker and a server";
  test::SharedDataset data({1, 4, 4});
  TrainConfig c = overflowing(data.path());
  c.parallel.mode = ModeKind::ps;
  c.parallel.ps.staleness = 1;
  std::ostringstream quiet;
  std::string message = "(no error)";
  try {
    Trainer(c, world).run(quiet);
  } catch (const CollectiveError& e) {
    message = e.what();
  }
  const std::vector<std::string> all = allgather_strings(world, message);
  EXPECT_NE(all[0].find("non-finite gradient (NaN or infinity) in linear"), std::string::npos) << all[0];
  EXPECT_EQ(all[static_cast<size_t>(world.size() - 1)], "a worker's non-finite stop") << "the server";
  EXPECT_EQ(quiet.str().find("stopped by"), std::string::npos) << quiet.str();
}

TEST(NonFinite, SkippingRunsEveryModeToTheEnd) {
  Communicator& world = test::world();
  test::SharedDataset data({1, 4, 4});
  for (const char* mode : {"sync", "pipeline", "ps"}) {
    TrainConfig c = overflowing(data.path());
    c.parallel.skip_nonfinite = true;
    if (std::string(mode) == "pipeline") c.parallel.pipeline.stages = world.size() % 2 == 0 ? 2 : world.size();
    if (std::string(mode) == "ps") c.parallel.mode = ModeKind::ps;
    std::ostringstream log;
    const TrainResult result = Trainer(c, world).run(log);
    if (world.rank() == 0) {
      EXPECT_EQ(result.epochs.size(), 1u) << mode;
      EXPECT_NE(log.str().find("steps skipped so far for non-finite gradients"), std::string::npos) << mode << log.str();
    }
  }
}

}  // namespace
}  // namespace ringtrain
