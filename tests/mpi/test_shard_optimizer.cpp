// --shard-optimizer (ZeRO stage 1) under mpirun: N ranks that each keep 1/N of the optimizer's state reach
// the weights of N ranks that keep all of it (1e-6 after 20 steps), with SGD-momentum and Adam, over our ring
// and over MPI's own reduce-scatter; and a sharded run's checkpoint resumes unsharded, on as many ranks or on
// one, and an unsharded one resumes sharded.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "ringtrain/comm/mpi_communicator.hpp"
#include "ringtrain/parallel/data_parallel.hpp"
#include "ringtrain/train/checkpoint.hpp"
#include "ringtrain/train/trainer.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::SharedDataset;

// linear1/weight (36 x 8192 floats, over 1 MiB) is exchanged in place, alone; the other parameters together.
const char* kShardedNet = "conv(4,3,pad=1),relu,maxpool(2),flatten,linear(8192),relu,linear(out)";

// The weights after `config`'s run on `comm`, and its log.
std::vector<float> sharded_run_weights(const TrainConfig& config, Communicator& comm, std::string* log = nullptr) {
  std::ostringstream out;
  Trainer trainer(config, comm);
  trainer.run(out);
  if (log) *log = out.str();
  std::vector<float> weights;
  for (Param* p : trainer.model().params())
    weights.insert(weights.end(), p->value.data(), p->value.data() + p->value.numel());
  return weights;
}

TrainConfig twenty_steps(const std::string& data, OptimizerKind optimizer) {
  TrainConfig c = test::train_config(
      data, {.model = kShardedNet, .epochs = 2, .steps = 20, .optimizer = optimizer, .weight_decay = 1e-4f});
  c.optimizer.l1 = 1e-5f;
  return c;
}

// The largest difference between the weights of a sharded and an unsharded run of 20 steps on `world`.
// `alone`: every gradient exchanged alone (--fusion-mb below the smallest), in both runs.
double sharded_vs_whole(OptimizerKind optimizer, Communicator& world, bool alone) {
  SharedDataset data({2, 6, 6});
  TrainConfig c = twenty_steps(data.path(), optimizer);
  if (alone) c.parallel.engine.fusion_bytes = 4;
  const std::vector<float> whole = sharded_run_weights(c, world);
  c.parallel.shard_optimizer = true;
  std::string log;
  const std::vector<float> sharded = sharded_run_weights(c, world, &log);
  EXPECT_NE(log.find(" a rank (1/" + std::to_string(world.size()) + " of "), std::string::npos) << log;
  return test::largest_difference(sharded, whole);
}

// Each gradient alone, summed around the ring in the same order either way: the same sums, the same update
// code, so the same weights (bit for bit: the bound is the acceptance's).
TEST(ShardOptimizer, SgdMomentumShardedEqualsUnsharded) {
  EXPECT_LT(sharded_vs_whole(OptimizerKind::sgd, test::world(), true), 1e-6) << test::world().size() << " ranks";
}

TEST(ShardOptimizer, AdamShardedEqualsUnsharded) {
  EXPECT_LT(sharded_vs_whole(OptimizerKind::adam, test::world(), true), 1e-6) << test::world().size() << " ranks";
}

// With fusion (the default --fusion-mb) the engine packs small gradients in the order backward hands them
// over, the sharded exchange in model order: fused sums differ in their last bits, which SGD keeps small.
// (Adam divides by the root of a gradient's square: where ranks' gradients cancel to nearly 0 a last-bit
// difference can flip an update's sign, as between two --fusion-mb values of unsharded runs.)
TEST(ShardOptimizer, SgdMomentumWithFusionEqualsUnsharded) {
  EXPECT_LT(sharded_vs_whole(OptimizerKind::sgd, test::world(), false), 1e-6) << test::world().size() << " ranks";
}

// --allreduce mpi: MPI_Reduce_scatter and MPI_Allgatherv, each rank owning the chunk of its own rank. MPI's
// reduce-scatter may sum in another order than its allreduce: SGD, which keeps such differences small.
TEST(ShardOptimizer, OverMpisReduceScatterEqualsUnsharded) {
  MpiCommunicatorConfig config;
  config.allreduce = AllreduceAlgorithm::mpi;
  MpiCommunicator world(MPI_COMM_WORLD, config);
  EXPECT_LT(sharded_vs_whole(OptimizerKind::sgd, world, true), 1e-6) << world.size() << " ranks";
}

// Ranks own the parts of a buffer without gaps or overlap, whatever its size; reduce-scatter then allgather
// is an allreduce.
TEST(ShardOptimizer, OwnedRangesCoverTheBuffer) {
  for (AllreduceAlgorithm algorithm : {AllreduceAlgorithm::ring, AllreduceAlgorithm::mpi}) {
    MpiCommunicatorConfig config;
    config.allreduce = algorithm;
    MpiCommunicator world(MPI_COMM_WORLD, config);
    for (size_t count : {size_t{0}, size_t{1}, size_t{5}, size_t{1000}}) {
      std::vector<float> data(count);
      for (size_t i = 0; i < count; ++i) data[i] = static_cast<float>(i + world.rank());
      world.reduce_scatter_sum(data.data(), count);
      world.allgather_owned(data.data(), count);
      const int n = world.size();
      for (size_t i = 0; i < count; ++i)
        ASSERT_EQ(data[i], static_cast<float>(n * i + n * (n - 1) / 2)) << name_of(algorithm) << " count " << count;
      const ElementRange mine = world.owned_range(count);
      std::vector<uint64_t> sizes(n);
      const uint64_t size = mine.size();
      world.allgather(&size, sizes.data(), sizeof size);
      uint64_t total = 0;
      for (uint64_t s : sizes) total += s;
      EXPECT_EQ(total, count);
    }
  }
}

// Checkpoints hold the full optimizer state: 10 steps sharded, then 10 more unsharded from its checkpoint,
// equal 20 steps unsharded; and the other way round.
void expect_resume_across(bool first_sharded, OptimizerKind optimizer) {
  Communicator& world = test::world();
  SharedDataset data({2, 6, 6});
  TrainConfig whole = twenty_steps(data.path(), optimizer);
  whole.parallel.engine.fusion_bytes = 4;  // each gradient alone: the same sums either way
  const std::vector<float> reference = sharded_run_weights(whole, world);

  TrainConfig first = whole;
  first.max_steps = 10;
  first.parallel.shard_optimizer = first_sharded;
  first.checkpoint_dir = data.path() + (first_sharded ? "/from-sharded" : "/from-whole");
  sharded_run_weights(first, world);
  TrainConfig second = whole;
  second.parallel.shard_optimizer = !first_sharded;
  second.resume = {ResumeFrom::file, CheckpointDir(first.checkpoint_dir, 3).path(10)};
  EXPECT_LT(test::largest_difference(sharded_run_weights(second, world), reference), 1e-6)
      << (first_sharded ? "sharded, then unsharded" : "unsharded, then sharded") << " with " << name_of(optimizer);
}

TEST(ShardOptimizer, ShardedCheckpointResumesUnsharded) {
  expect_resume_across(true, OptimizerKind::adam);
  expect_resume_across(true, OptimizerKind::sgd);
}

TEST(ShardOptimizer, UnshardedCheckpointResumesSharded) { expect_resume_across(false, OptimizerKind::adam); }

// A sharded run's checkpoint resumes on one rank with N times the batch, as an unsharded one does (SGD: one
// rank sums the batch in another order than N, a difference Adam could amplify where gradients cancel).
TEST(ShardOptimizer, ShardedCheckpointResumesOnOneRank) {
  Communicator& world = test::world();
  SharedDataset data({2, 6, 6});
  TrainConfig whole = twenty_steps(data.path(), OptimizerKind::sgd);
  const std::vector<float> reference = sharded_run_weights(whole, world);
  TrainConfig first = whole;
  first.max_steps = 10;
  first.parallel.shard_optimizer = true;
  first.checkpoint_dir = data.path() + "/sharded";
  sharded_run_weights(first, world);
  TrainConfig alone = whole;
  alone.batch = whole.batch * world.size();
  alone.resume = {ResumeFrom::file, CheckpointDir(first.checkpoint_dir, 3).path(10)};
  MpiCommunicator self(MPI_COMM_SELF);
  EXPECT_LT(test::largest_difference(sharded_run_weights(alone, self), reference), 1e-5);
  world.barrier();  // every rank has read the checkpoint before rank 0 removes the data
}

}  // namespace
}  // namespace ringtrain
