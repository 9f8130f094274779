// Synchronous data parallel under mpirun: N ranks with batch b end with the weights one rank reaches with
// batch N*b (the acceptance check: 1e-5 after 20 steps), from any initial parameters on the other ranks.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "ringtrain/comm/mpi_communicator.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/parallel/data_parallel.hpp"
#include "ringtrain/train/eval.hpp"
#include "ringtrain/train/trainer.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::SharedDataset;

std::vector<float> trained_weights(const TrainConfig& config, Communicator& comm) {
  std::ostringstream quiet;
  Trainer trainer(config, comm);
  trainer.run(quiet);
  std::vector<float> out;
  std::vector<const Tensor*> tensors;
  for (Param* p : trainer.model().params()) tensors.push_back(&p->value);
  for (const NamedTensor& b : trainer.model().named_buffers()) tensors.push_back(b.tensor);  // batchnorm's running statistics
  for (const Tensor* t : tensors) {
    const Tensor host = t->to(Device::cpu);
    out.insert(out.end(), host.data(), host.data() + host.numel());
  }
  return out;
}

// The largest difference between the weights (and batchnorm statistics) N ranks reach with `c` and one
// rank's with N times the batch.
double n_ranks_vs_one(const TrainConfig& c) {
  Communicator& world = test::world();
  const std::vector<float> parallel = trained_weights(c, world);

  TrainConfig one = c;
  one.batch = c.batch * world.size();
  MpiCommunicator self(MPI_COMM_SELF);
  const std::vector<float> reference = trained_weights(one, self);

  EXPECT_EQ(parallel.size(), reference.size());
  double worst = parallel.size() == reference.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < parallel.size() && i < reference.size(); ++i)
    worst = std::max(worst, std::fabs(double(parallel[i]) - reference[i]));
  return worst;
}

double n_ranks_vs_one(const std::string& model, const Shape& sample_shape, OptimizerKind optimizer, DeviceKind device,
                      bool sync_batchnorm, const Augmentation& augment = {}) {
  SharedDataset data(sample_shape);
  TrainConfig c = test::train_config(
      data.path(), {.model = model, .epochs = 2, .steps = 20, .optimizer = optimizer, .weight_decay = 1e-4f});
  c.device.kind = device;
  c.parallel.sync_batchnorm = sync_batchnorm;
  c.augment = augment;
  return n_ranks_vs_one(c);
}

void expect_n_ranks_equal_one(const std::string& model, const Shape& sample_shape, OptimizerKind optimizer,
                              DeviceKind device = DeviceKind::cpu, bool sync_batchnorm = false) {
  const double worst = n_ranks_vs_one(model, sample_shape, optimizer, device, sync_batchnorm);
  // cuDNN picks its algorithms per batch size, so on a GPU the two runs also sum in different orders.
  EXPECT_LT(worst, device == DeviceKind::cpu ? 1e-5 : 1e-4)
      << model << " with " << name_of(optimizer) << " on " << test::world().size() << " ranks";
}

TEST(DataParallel, MlpOnNRanksEqualsOneRankWithNTimesTheBatch) {
  expect_n_ranks_equal_one("flatten,linear(16),relu,linear(out)", {2, 4, 4}, OptimizerKind::sgd);
}

TEST(DataParallel, ConvNetWithAdamOnNRanksEqualsOneRank) {
  expect_n_ranks_equal_one("conv(4,3,pad=1),relu,maxpool(2),flatten,linear(out)", {2, 6, 6}, OptimizerKind::adam);
}

// Residual blocks with identity and projection shortcuts (no batchnorm: its statistics are each rank's own
// batch's unless --sync-batchnorm, so they differ from one rank's with the whole batch by design).
TEST(DataParallel, ResidualNetOnNRanksEqualsOneRank) {
  expect_n_ranks_equal_one(test::kResidualNet, {2, 6, 6}, OptimizerKind::sgd);
}

// A GPT on token windows (a label per position: the global batch's loss is a mean over its tokens) with AdamW,
// whose decay reaches the embedding tables and the kernels; and with the output layer tied to the token table,
// whose gradient gathers from both ends of the model before the ranks average it. A small lr: the key bias's
// gradient is 0 but for rounding (softmax ignores a shift shared by a query's scores), and Adam scales that
// noise, which differs with the order of the sums, up to steps of lr.
TEST(DataParallel, TransformerWithAdamWOnNRanksEqualsOneRank) {
  SharedDataset data(test::TokenWindows{});
  for (const char* model : {test::kTinyGpt, test::kTinyTiedGpt}) {
    const TrainConfig c = test::train_config(data.path(), {.model = model, .steps = 20, .lr = 1e-3f,
                                                           .optimizer = OptimizerKind::adamw, .weight_decay = 0.1f});
    EXPECT_LT(n_ranks_vs_one(c), 1e-5) << model << " on " << test::world().size() << " ranks";
  }
}

// --sync-batchnorm: every rank normalises by the whole global batch's statistics, so N ranks equal one rank
// again with batchnorm in the model (running statistics included); without it they do not.
const char* kBatchNormResidualNet =
    "conv(4,3,pad=1),batchnorm,relu,residual(conv(4,3,pad=1),batchnorm,relu,conv(4,3,pad=1),batchnorm),relu,"
    "globalavgpool,linear(out)";

TEST(DataParallel, SyncBatchnormOnNRanksEqualsOneRank) {
  expect_n_ranks_equal_one(kBatchNormResidualNet, {2, 6, 6}, OptimizerKind::sgd, DeviceKind::cpu, true);
  if (test::world().size() > 1)
    EXPECT_GT(n_ranks_vs_one(kBatchNormResidualNet, {2, 6, 6}, OptimizerKind::sgd, DeviceKind::cpu, false), 1e-3)
      << "per-rank statistics should differ from the whole batch's";
}

// --augment: a sample's crop and flip follow from the seed, the epoch and the sample alone, so N ranks still
// train on exactly what one rank trains on (test_augment.cpp checks that the samples do change).
TEST(DataParallel, AugmentedImagesOnNRanksEqualOneRank) {
  const char* net = "conv(4,3,pad=1),relu,maxpool(2),flatten,linear(out)";
  EXPECT_LT(n_ranks_vs_one(net, {2, 6, 6}, OptimizerKind::sgd, DeviceKind::cpu, false, {2, true}), 1e-5);
}

// The same on GPUs, gradients over NCCL: each rank's reference run is on its own GPU too.
TEST(DataParallel, OnGpusOverNcclEqualsOneGpu) {
  if (const std::string why = test::start_gpu_per_rank(test::world()); !why.empty()) GTEST_SKIP() << why;
  expect_n_ranks_equal_one("conv(4,3,pad=1),relu,maxpool(2),flatten,linear(out)", {2, 6, 6}, OptimizerKind::adam, DeviceKind::cuda);
  expect_n_ranks_equal_one(test::kResidualNet, {2, 6, 6}, OptimizerKind::sgd, DeviceKind::cuda);
  expect_n_ranks_equal_one(kBatchNormResidualNet, {2, 6, 6}, OptimizerKind::sgd, DeviceKind::cuda, true);
}

TEST(DataParallel, RankZerosParametersAreBroadcast) {
  Communicator& world = test::world();
  // Each rank initialises differently; after construction all hold rank 0's parameters.
  Model model("flatten,linear(8),relu,linear(3)", {1, 4, 4}, 3, 100 + world.rank());
  auto loss = make_loss(true);
  auto opt = make_optimizer({});
  std::ostringstream warnings;
  const OptimizerConfig optimizer_config;
  DataParallel dp({}, world, {model, Device::cpu, *loss, *opt, optimizer_config, 4, 1, nullptr, warnings, {}});
  Model rank0("flatten,linear(8),relu,linear(3)", {1, 4, 4}, 3, 100);
  const auto mine = model.params(), expect = rank0.params();
  for (size_t p = 0; p < mine.size(); ++p)
    for (int64_t i = 0; i < mine[p]->value.numel(); ++i) ASSERT_EQ(mine[p]->value.data()[i], expect[p]->value.data()[i]);
}

TEST(DataParallel, RankZeroSavesAndEvalOverNRanksScoresLikeOneRank) {
  Communicator& world = test::world();
  SharedDataset data({1, 4, 4});
  TrainConfig c = test::train_config(data.path());
  c.save_model = data.path() + "/model.h5";
  c.metrics_csv = data.path() + "/metrics.csv";
  std::ostringstream quiet;
  const TrainResult trained = Trainer(c, world).run(quiet);
  EXPECT_EQ(trained.test.samples, 50) << "the test split is spread over the ranks and summed";
  world.barrier();

  EvalConfig e;
  e.model_file = c.save_model;
  e.data.dir = data.path();
  e.batch = 7;  // 50 samples: ranks get unequal shares, some a partial batch
  const Score spread = evaluate_saved_model(e, world, quiet);
  MpiCommunicator self(MPI_COMM_SELF);
  const Score alone = evaluate_saved_model(e, self, quiet);
  EXPECT_EQ(spread.samples, 50);
  EXPECT_EQ(spread.metric_sum, alone.metric_sum);
  EXPECT_NEAR(spread.loss_sum, alone.loss_sum, 1e-9 * std::fabs(alone.loss_sum));
  // Training evaluated with batches of 256, the saved model with 7: GEMMs of other shapes may round the
  // float logits differently (this depends on the machine's kernels), so agreement is to float precision.
  EXPECT_NEAR(spread.loss_sum, trained.test.loss_sum, 1e-6 * std::fabs(alone.loss_sum));
}

TEST(DataParallel, DifferentHyperParametersAreOneCollectiveError) {
  Communicator& world = test::world();
  SharedDataset data({1, 4, 4});
  TrainConfig c = test::train_config(data.path(), {.model = "flatten,linear(out)", .batch = 64, .epochs = 5});
  c.lr = world.rank() == 0 ? 0.05f : 0.1f;
  try {
    Trainer trainer(c, world);
    FAIL() << "no error";
  } catch (const CollectiveError& e) {
    EXPECT_NE(std::string(e.what()).find("ranks disagree on --lr: rank 0 has '0.05', rank 1 has '0.1'"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace ringtrain
