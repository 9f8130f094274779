// Pipeline model parallel under mpirun. With P = the world's size (2, 3, 4 under mpi.np2..np4), a P-stage
// pipeline ends with the weights one rank reaches on the same global batch (1e-5 after 10 steps), for gpipe
// and 1f1b (a GPT among the models, cut between its blocks), and 1F1B never holds more than P micro-batches of
// activations on a stage. Through the trainer: all ranks as stages, and the 2 x 2 hybrid (2 replicas of 2
// stages) on 4 ranks, each equal to one rank (the GPT on token shards too), with rank 0 saving the whole
// model and the test split scored through the pipeline.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <sstream>

#include "ringtrain/comm/mpi_communicator.hpp"
#include "ringtrain/parallel/pipeline_parallel.hpp"
#include "ringtrain/train/model_file.hpp"
#include "ringtrain/train/trainer.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

constexpr int kClasses = 3;

struct PipelineCase {
  std::string spec;
  Shape sample;
  PipelineSchedule schedule;
  int micro_batches;
  OptimizerKind optimizer = OptimizerKind::sgd;
  int64_t vocabulary = 0;  // > 0: samples are windows of sample[0] token ids below it, a label per position
};

// The same batch on every rank for a given step: random samples of kClasses classes, or random token windows.
Batch synthetic_batch(int step, int64_t rows, const PipelineCase& c) {
  Batch b;
  Shape shape{rows};
  shape.insert(shape.end(), c.sample.begin(), c.sample.end());
  const uint64_t seed = 1000 + static_cast<uint64_t>(step);
  if (c.vocabulary == 0) {
    b.x = test::random_tensor(shape, seed);
    for (int64_t i = 0; i < rows; ++i) b.y.labels.push_back(static_cast<int32_t>((i * 7 + step) % kClasses));
    return b;
  }
  b.x = Tensor(shape);
  Rng rng(seed);
  for (int64_t i = 0; i < b.x.numel(); ++i) {
    b.x[i] = static_cast<float>(rng.below(static_cast<uint64_t>(c.vocabulary)));
    b.y.labels.push_back(static_cast<int32_t>(rng.below(static_cast<uint64_t>(c.vocabulary))));
  }
  return b;
}

// Trains 10 steps through the pipeline and, on every rank, the whole model alone on the same batches;
// compares the layers this rank's stage holds. Returns the pipeline for further checks.
void expect_stages_equal_one_rank(const PipelineCase& c, int* peak_held = nullptr, int* stage = nullptr) {
  Communicator& world = test::world();
  ParallelConfig config;
  PipelineConfig& pc = config.pipeline;
  pc.stages = world.size();
  pc.micro_batches = c.micro_batches;
  pc.schedule = c.schedule;
  OptimizerConfig oc;
  oc.kind = c.optimizer;
  oc.momentum = 0.9f;
  oc.weight_decay = 1e-4f;
  const int64_t rows = 12;

  const int64_t classes = c.vocabulary > 0 ? c.vocabulary : kClasses;
  Model model(c.spec, c.sample, classes, 5);
  auto loss = make_loss(true);
  auto optimizer = make_optimizer(oc);
  std::ostringstream warnings;
  PipelineParallel pipeline(config, world, {model, Device::cpu, *loss, *optimizer, oc, 4, 1, nullptr, warnings, {}});

  Model alone(c.spec, c.sample, classes, 5);
  auto alone_loss = make_loss(true);
  auto alone_optimizer = make_optimizer(oc);
  for (int step = 0; step < 10; ++step) {
    const Batch batch = synthetic_batch(step, rows, c);
    pipeline.train_step(batch, 0.05f);
    alone.zero_grad();
    alone_loss->forward(alone.forward(batch.x, Mode::train), batch.y);
    alone.backward(alone_loss->backward(1.0f));
    alone_optimizer->step(alone.params(), 0.05f);
  }

  double worst = 0.0;
  for (size_t i = pipeline.layers().begin; i < pipeline.layers().end; ++i) {
    const auto mine = model.named_params(i), expect = alone.named_params(i);
    ASSERT_EQ(mine.size(), expect.size());
    for (size_t p = 0; p < mine.size(); ++p)
      for (int64_t k = 0; k < mine[p].param->value.numel(); ++k)
        worst = std::max(worst, std::fabs(double(mine[p].param->value[k]) - expect[p].param->value[k]));
  }
  EXPECT_LT(worst, 1e-5) << c.spec << ", " << name_of(c.schedule) << " with " << c.micro_batches << " micro-batches, stage "
                         << pipeline.stage() << " of " << world.size();
  const Score mine = loss->take_score(), expect = alone_loss->take_score();
  if (pipeline.stage() + 1 == world.size()) {  // the last stage scores the loss
    EXPECT_EQ(mine.samples, 10 * rows * model.predictions_per_sample());  // a language model's are tokens
    EXPECT_NEAR(mine.loss_sum, expect.loss_sum, 1e-5 * expect.loss_sum);
  } else {
    EXPECT_EQ(mine.samples, 0);
  }
  if (peak_held) *peak_held = pipeline.peak_micro_batches_held();
  if (stage) *stage = pipeline.stage();
}

const char* kMlp = "flatten,linear(16),relu,linear(12),tanh,linear(out)";
const char* kConvNet = "conv(4,3,pad=1),relu,maxpool(2),flatten,linear(out)";

TEST(Pipeline, GpipeStagesEqualOneRank) { expect_stages_equal_one_rank({kMlp, {2, 4, 4}, PipelineSchedule::gpipe, 4}); }

TEST(Pipeline, OneFOneBStagesEqualOneRank) {
  expect_stages_equal_one_rank({kMlp, {2, 4, 4}, PipelineSchedule::one_f_one_b, 6});
  expect_stages_equal_one_rank({kMlp, {2, 4, 4}, PipelineSchedule::one_f_one_b, 2});  // fewer micro-batches than stages (np3, np4)
}

TEST(Pipeline, ConvNetWithAdamEqualsOneRankUnderBothSchedules) {
  expect_stages_equal_one_rank({kConvNet, {2, 6, 6}, PipelineSchedule::one_f_one_b, 4, OptimizerKind::adam});
  expect_stages_equal_one_rank({kConvNet, {2, 6, 6}, PipelineSchedule::gpipe, 3, OptimizerKind::adam});
}

// A GPT with stages cut between its transformer blocks (each block is one layer to the balancer), a label per
// position. SGD: at this lr Adam would scale the key bias's gradient, 0 but for rounding, into steps that differ
// with the order of the sums (data parallel checks AdamW at a small lr).
TEST(Pipeline, TransformerEqualsOneRankUnderBothSchedules) {
  expect_stages_equal_one_rank({test::kTinyGpt, {8}, PipelineSchedule::one_f_one_b, 4, OptimizerKind::sgd, 16});
  expect_stages_equal_one_rank({test::kTinyGpt, {8}, PipelineSchedule::gpipe, 3, OptimizerKind::sgd, 16});
}

// Stages cut between residual blocks (each block is one layer to the balancer).
TEST(Pipeline, ResidualNetEqualsOneRankUnderBothSchedules) {
  expect_stages_equal_one_rank({test::kResidualNet, {2, 6, 6}, PipelineSchedule::one_f_one_b, 4});
  expect_stages_equal_one_rank({test::kResidualNet, {2, 6, 6}, PipelineSchedule::gpipe, 3, OptimizerKind::adam});
}

TEST(Pipeline, OneFOneBHoldsAtMostStagesMicroBatchesWhereGpipeHoldsAll) {
  const int p = test::world().size();
  int peak = 0, stage = 0;
  expect_stages_equal_one_rank({kMlp, {2, 4, 4}, PipelineSchedule::one_f_one_b, 12}, &peak, &stage);
  EXPECT_LE(peak, p);
  EXPECT_EQ(peak, p - stage);
  expect_stages_equal_one_rank({kMlp, {2, 4, 4}, PipelineSchedule::gpipe, 12}, &peak, &stage);
  EXPECT_EQ(peak, 12);
}

// Through the trainer: the world as `stages` x (world / stages) and one rank with the replicas' global
// batch end with the same weights; rank 0 saves the gathered model; the test split scores alike.
struct TrainerRun {
  int stages;
  DeviceKind device = DeviceKind::cpu;
  const char* model = kMlp;
  Shape sample = {2, 4, 4};
  int micro_batches = 2;
  bool sync_batchnorm = false;
  bool tokens = false;  // test::TokenWindows{} instead of `sample`s of 3 classes
};

void expect_trainer_equals_one_rank(const TrainerRun& run) {
  const int stages = run.stages;
  const DeviceKind device = run.device;
  Communicator& world = test::world();
  std::optional<test::SharedDataset> shared;
  if (run.tokens) shared.emplace(test::TokenWindows{});
  else shared.emplace(run.sample);
  const test::SharedDataset& data = *shared;
  TrainConfig c = test::train_config(data.path(), {.model = run.model, .steps = 10});
  c.save_model = data.path() + "/pipeline.h5";
  c.parallel.pipeline.stages = stages;
  c.parallel.pipeline.micro_batches = run.micro_batches;
  c.parallel.sync_batchnorm = run.sync_batchnorm;
  c.device.kind = device;
  std::ostringstream quiet;
  const TrainResult piped = Trainer(c, world).run(quiet);
  if (world.rank() != 0) return;

  TrainConfig one = c;
  one.batch = c.batch * (world.size() / stages);
  one.parallel.pipeline = {};
  one.save_model.clear();
  MpiCommunicator self(MPI_COMM_SELF);
  Trainer reference(one, self);
  const TrainResult alone = reference.run(quiet);

  const LoadedModel saved = load_model(c.save_model);
  // Parameters, then buffers (batchnorm's running statistics), by name.
  std::vector<NamedTensor> got, want;
  for (const NamedParam& p : saved.model->named_params()) got.push_back({p.name, &p.param->value});
  for (const NamedParam& p : reference.model().named_params()) want.push_back({p.name, &p.param->value});
  for (const NamedTensor& b : saved.model->named_buffers()) got.push_back(b);
  for (const NamedTensor& b : reference.model().named_buffers()) want.push_back(b);
  ASSERT_EQ(got.size(), want.size());
  double worst = 0.0;
  for (size_t p = 0; p < got.size(); ++p) {
    ASSERT_EQ(got[p].name, want[p].name);
    const Tensor expect = want[p].tensor->to(Device::cpu);
    for (int64_t k = 0; k < expect.numel(); ++k)
      worst = std::max(worst, std::fabs(double((*got[p].tensor)[k]) - expect[k]));
  }
  EXPECT_LT(worst, device == DeviceKind::cpu ? 1e-5 : 1e-4) << stages << " stages on " << world.size() << " ranks";
  EXPECT_EQ(piped.test.samples, 50 * saved.model->predictions_per_sample());  // a language model's are tokens
  EXPECT_NEAR(piped.test.loss_sum, alone.test.loss_sum, 1e-4 * alone.test.loss_sum);
}

TEST(Pipeline, TrainerWithEveryRankAStageEqualsOneRank) { expect_trainer_equals_one_rank({test::world().size()}); }

TEST(Pipeline, HybridTwoReplicasOfTwoStagesEqualsOneRank) {
  if (test::world().size() != 4) GTEST_SKIP() << "the 2 x 2 hybrid needs 4 ranks (mpi.np4)";
  expect_trainer_equals_one_rank({2});
}

TEST(Pipeline, TransformerThroughTheTrainerEqualsOneRank) {
  expect_trainer_equals_one_rank({.stages = test::world().size(), .model = test::kTinyGpt, .tokens = true});
  if (test::world().size() == 4) expect_trainer_equals_one_rank({.stages = 2, .model = test::kTinyGpt, .tokens = true});
}

// --sync-batchnorm in the hybrid: each stage's batchnorms sum over the same stage of the other replica, so
// 2 replicas of 2 stages (one micro-batch: a replica's whole batch) equal one rank with the global batch,
// running statistics included.
TEST(Pipeline, HybridWithSyncBatchnormEqualsOneRank) {
  if (test::world().size() != 4) GTEST_SKIP() << "the 2 x 2 hybrid needs 4 ranks (mpi.np4)";
  expect_trainer_equals_one_rank({.stages = 2,
                                  .model = "conv(4,3,pad=1),batchnorm,relu,residual(conv(4,3,pad=1),batchnorm,relu,"
                                           "conv(4,3,pad=1),batchnorm),relu,globalavgpool,linear(out)",
                                  .sample = {2, 6, 6},
                                  .micro_batches = 1,
                                  .sync_batchnorm = true});
}

// The same on GPUs: activations and gradients over NCCL send/recv.
TEST(Pipeline, OnGpusOverNcclEqualsOneGpu) {
  if (const std::string why = test::start_gpu_per_rank(test::world()); !why.empty()) GTEST_SKIP() << why;
  expect_trainer_equals_one_rank({test::world().size(), DeviceKind::cuda});
}

}  // namespace
}  // namespace ringtrain
