// Early stopping on N ranks, in every mode: each rank decides from the validation score summed over all of
// them (with --l1's penalty, which rank 0 works out from the gathered model and hands to the others), so every
// rank ends the run after the same epoch, with the same best epoch, and --save-best's collective write is
// taken by every rank alike (no rank left waiting in a gather).
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/train/trainer.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

TEST(EarlyStop, EveryRankStopsAfterTheSameEpochInEveryMode) {
  Communicator& world = test::world();
  test::SharedDataset data({1, 4, 4});
  for (const std::string mode : {"sync", "pipeline", "ps"}) {
    SCOPED_TRACE(mode);
    if (mode == "ps" && world.size() < 2) continue;
    TrainConfig c = test::train_config(data.path(), {.epochs = 5});
    c.data.val = data.path() + "/test-00000.h5";
    c.early_stop_patience = 2;
    c.min_delta = 10.0;  // no epoch after the first improves on it: the run ends after the third
    c.save_best = data.path() + "/best-" + mode + ".h5";
    c.optimizer.l1 = 1e-3f;  // its penalty, in val_loss, is gathered from the ranks that hold the layers
    if (mode == "pipeline") {
      c.parallel.pipeline.stages = world.size() % 2 == 0 ? 2 : world.size();
      c.parallel.pipeline.micro_batches = 2;
    }
    if (mode == "ps") c.parallel.mode = ModeKind::ps;
    std::ostringstream log;
    const TrainResult r = Trainer(c, world).run(log);
    const std::string mine = "stopped after " + std::to_string(r.early_stopped_after) + ", " +
                             std::to_string(r.epochs.size()) + " epochs, best " + std::to_string(r.best.epoch) +
                             " of " + std::to_string(r.best.value);
    for (const std::string& theirs : allgather_strings(world, mine)) EXPECT_EQ(theirs, mine);
    EXPECT_EQ(r.early_stopped_after, 3) << log.str();
    if (world.rank() == 0) {
      EXPECT_TRUE(std::filesystem::exists(c.save_best));
      EXPECT_NE(log.str().find("the run ends after epoch 3 of 5"), std::string::npos) << log.str();
    }
  }
}

}  // namespace
}  // namespace ringtrain
