// --clip-grad-norm under mpirun (np2..np4), every mode against one rank with the global batch: the norm is
// the averaged gradient's, so data parallel (whole or with --shard-optimizer, whose ranks each hold a share),
// a pipeline (whose stages each hold some layers; the 2 x 2 hybrid on np4) and parameter servers with
// staleness 0 (two servers on np4, which sum their shards' squares) clip as one rank does. With a staleness
// bound above 0 each push is its own update: no update moves the weights by more than lr x the norm. On GPUs
// (skipping, saying why, without one per rank) data parallel and the pipeline clip on the device.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "ringtrain/comm/mpi_communicator.hpp"
#include "ringtrain/train/model_file.hpp"
#include "ringtrain/train/trainer.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

const char* kClippedMlp = "flatten,linear(16),relu,linear(out)";
constexpr float kClip = 0.05f;  // well below these gradients' norms: every step is clipped

TrainConfig clipped_run(const std::string& data, OptimizerKind optimizer = OptimizerKind::sgd) {
  TrainConfig c = test::train_config(data, {.model = kClippedMlp, .epochs = 2, .steps = 12, .optimizer = optimizer});
  c.parallel.clip_grad_norm = kClip;
  c.save_model = data + "/clipped.h5";
  return c;
}

std::vector<float> flat_weights_of(Model& model) { return test::flat_weights(model.params()); }

// The weights rank 0 saves after `c` on every rank (gathered: every mode's whole model); empty elsewhere.
std::vector<float> saved_weights(const TrainConfig& c) {
  std::ostringstream quiet;
  Trainer(c, test::world()).run(quiet);
  if (test::world().rank() != 0) return {};
  return flat_weights_of(*load_model(c.save_model).model);
}

// On rank 0 alone, `c` as plain data parallel with the batch of `replicas` replicas.
std::vector<float> one_rank_weights(TrainConfig c, int replicas) {
  c.parallel = ParallelConfig{.clip_grad_norm = c.parallel.clip_grad_norm};
  c.batch *= replicas;
  c.save_model.clear();
  MpiCommunicator self(MPI_COMM_SELF);
  std::ostringstream quiet;
  Trainer trainer(c, self);
  trainer.run(quiet);
  return flat_weights_of(trainer.model());
}

TEST(Clipping, DataParallelClipsLikeOneRank) {
  test::SharedDataset data({2, 4, 4});
  const TrainConfig c = clipped_run(data.path());
  const std::vector<float> ranks = saved_weights(c);
  if (test::world().rank() != 0) return;
  const std::vector<float> one = one_rank_weights(c, test::world().size());
  EXPECT_LT(test::largest_difference(ranks, one), 1e-5) << test::world().size() << " ranks";
  TrainConfig unclipped = c;
  unclipped.parallel.clip_grad_norm = 0.0f;
  EXPECT_GT(test::largest_difference(one_rank_weights(unclipped, test::world().size()), one), 1e-3)
      << "the clip should change these steps";
}

// Each rank holds the average of its share of the gradients only: the norm sums the shares. AdamW's decay
// follows each share's kernel flag.
TEST(Clipping, ShardedOptimizerClipsLikeOneRank) {
  test::SharedDataset data({2, 4, 4});
  TrainConfig c = clipped_run(data.path(), OptimizerKind::adamw);
  c.parallel.shard_optimizer = true;
  c.parallel.engine.fusion_bytes = 4;  // each gradient reduced alone, as on one rank
  const std::vector<float> ranks = saved_weights(c);
  if (test::world().rank() != 0) return;
  EXPECT_LT(test::largest_difference(ranks, one_rank_weights(c, test::world().size())), 1e-5);
}

TEST(Clipping, PipelineNormSpansTheStages) {
  test::SharedDataset data({2, 4, 4});
  TrainConfig c = clipped_run(data.path());
  const int stages = test::world().size() == 4 ? 2 : test::world().size();  // np4: 2 replicas of 2 stages
  c.parallel.pipeline.stages = stages;
  c.parallel.pipeline.micro_batches = 2;
  const std::vector<float> piped = saved_weights(c);
  if (test::world().rank() != 0) return;
  EXPECT_LT(test::largest_difference(piped, one_rank_weights(c, test::world().size() / stages)), 1e-5)
      << stages << " stages on " << test::world().size() << " ranks";
}

// On GPUs the norm stays on the device: summed there, added over the stages by NCCL, read by the scaling.
TEST(Clipping, OnGpusDataParallelAndPipelineClipLikeOneGpu) {
  if (const std::string why = test::start_gpu_per_rank(test::world()); !why.empty()) GTEST_SKIP() << why;
  test::SharedDataset data({2, 4, 4});
  TrainConfig c = clipped_run(data.path(), OptimizerKind::adamw);
  c.device.kind = DeviceKind::cuda;
  const std::vector<float> ranks = saved_weights(c);
  if (test::world().rank() == 0)
    EXPECT_LT(test::largest_difference(ranks, one_rank_weights(c, test::world().size())), 1e-4) << "data parallel";
  c.parallel.pipeline.stages = test::world().size();
  c.parallel.pipeline.micro_batches = 2;
  const std::vector<float> piped = saved_weights(c);
  if (test::world().rank() == 0) EXPECT_LT(test::largest_difference(piped, one_rank_weights(c, 1)), 1e-4) << "pipeline";
}

TrainConfig served(TrainConfig c, int staleness) {
  c.parallel.mode = ModeKind::ps;
  c.parallel.ps.servers = test::world().size() >= 4 ? 2 : 1;
  c.parallel.ps.staleness = staleness;
  c.parallel.ps.timeout_s = 60.0;
  return c;
}

TEST(Clipping, ParameterServersWithStalenessZeroClipLikeOneRank) {
  test::SharedDataset data({2, 4, 4});
  const TrainConfig c = served(clipped_run(data.path()), 0);
  const std::vector<float> ps = saved_weights(c);
  if (test::world().rank() != 0) return;
  const int workers = test::world().size() - c.parallel.ps.servers;
  EXPECT_LT(test::largest_difference(ps, one_rank_weights(c, workers)), 1e-5)
      << workers << " workers, " << c.parallel.ps.servers << " servers";
}

// Plain SGD moves the weights by lr x the clipped gradient: at most lr x the norm per update.
TEST(Clipping, ParameterServersWithStalenessClipEveryPush) {
  test::SharedDataset data({2, 4, 4});
  TrainConfig c = served(clipped_run(data.path()), 2);
  c.optimizer.momentum = 0.0f;
  const std::vector<float> ps = saved_weights(c);
  if (test::world().rank() != 0) return;
  TrainConfig start = c;  // the initial weights: the same seed, no steps
  start.parallel = {};
  MpiCommunicator self(MPI_COMM_SELF);
  const std::vector<float> initial = flat_weights_of(Trainer(start, self).model());
  ASSERT_EQ(ps.size(), initial.size());
  double moved = 0.0;
  for (size_t i = 0; i < ps.size(); ++i) moved += (double(ps[i]) - initial[i]) * (double(ps[i]) - initial[i]);
  const int workers = test::world().size() - c.parallel.ps.servers;
  const double updates = 2.0 * double(c.max_steps) * workers;  // generous: a fast worker may push more
  EXPECT_LE(std::sqrt(moved), updates * c.lr * kClip * (1.0 + 1e-4));
  EXPECT_GT(std::sqrt(moved), 0.0);
}

}  // namespace
}  // namespace ringtrain
