// Fine-tuning under mpirun (mpi.np2..np4), from a saved model (--init-from) with the first layers frozen
// (--freeze): data parallel on N ranks ends where one rank with N x the batch ends (1e-5 after 20 steps), as do
// a pipeline of every rank and parameter servers at staleness 0, and in each the frozen layers end where they
// began (the file's values), bit for bit; only the gradients of the layers that train reach the allreduce
// engine (the bytes it counts, and the timeline's allreduce spans); a pipeline's checkpoint holds no optimizer
// state for the frozen parameters.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>

#include "ringtrain/comm/mpi_communicator.hpp"
#include "ringtrain/parallel/data_parallel.hpp"
#include "ringtrain/train/checkpoint.hpp"
#include "ringtrain/train/model_file.hpp"
#include "ringtrain/train/trainer.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

// The frozen batchnorm runs on its running statistics, which every replica shares: N ranks then equal one
// rank with it, where a training batchnorm's per-rank statistics would not.
constexpr const char* kFinetunedNet = "conv(4,3,pad=1),batchnorm,relu,maxpool(2),flatten,linear(8),relu,linear(out)";
constexpr size_t kFrozen = 4;  // conv1, batchnorm1, relu1, maxpool1

struct FinetunedWeights {
  std::vector<float> frozen, trained;  // parameters and buffers of the frozen layers, of the others
};

FinetunedWeights finetuned_weights_of(Model& m) {
  FinetunedWeights out;
  for (size_t i = 0; i < m.size(); ++i) {
    std::vector<Tensor*> tensors;
    for (Param* p : m.layer(i).params()) tensors.push_back(&p->value);
    for (const NamedTensor& b : m.named_buffers(i)) tensors.push_back(b.tensor);
    for (const Tensor* t : tensors) {
      const Tensor host = t->to(Device::cpu);
      std::vector<float>& to = i < kFrozen ? out.frozen : out.trained;
      to.insert(to.end(), host.data(), host.data() + host.numel());
    }
  }
  return out;
}

// Starts from another model of the same architecture (rank 0 writes it; collective), the first layers frozen.
TrainConfig frozen_run(const std::string& data) {
  TrainConfig c = test::train_config(data, {.model = kFinetunedNet, .epochs = 2, .steps = 20, .weight_decay = 1e-3f});
  c.fine_tune.init_from = data + "/trained.h5";
  if (test::world().rank() == 0) {
    Model trained(kFinetunedNet, {2, 6, 6}, 3, 99);
    save_model(c.fine_tune.init_from, trained, TargetSpace{true}, InputTransform{});
  }
  test::world().barrier();
  c.fine_tune.freeze = {{":4", "", 0, static_cast<int64_t>(kFrozen)}};
  c.save_model = data + "/model.h5";
  return c;
}

// Trains `parallel` on every rank; on rank 0, compares the model it saved with `alone` trained on one rank:
// the trained layers to 1e-5, the frozen ones bit for bit to where both began (the file's values: every rank,
// each pipeline stage and each parameter server loaded it).
void expect_like_one_rank(const TrainConfig& parallel, const TrainConfig& alone) {
  Communicator& world = test::world();
  std::ostringstream quiet;
  Trainer(parallel, world).run(quiet);
  if (world.rank() != 0) return;
  MpiCommunicator self(MPI_COMM_SELF);
  Trainer reference(alone, self);
  const FinetunedWeights before = finetuned_weights_of(reference.model());
  reference.run(quiet);
  const FinetunedWeights want = finetuned_weights_of(reference.model());
  const FinetunedWeights got = finetuned_weights_of(*load_model(parallel.save_model).model);
  EXPECT_TRUE(got.frozen == before.frozen && want.frozen == before.frozen) << "a frozen layer moved";
  Model trained(kFinetunedNet, {2, 6, 6}, 3, 99);
  EXPECT_EQ(before.frozen, finetuned_weights_of(trained).frozen) << "not the file's weights";
  ASSERT_EQ(got.trained.size(), want.trained.size());
  double worst = 0.0;
  for (size_t i = 0; i < got.trained.size(); ++i) worst = std::max(worst, std::fabs(double(got.trained[i]) - want.trained[i]));
  EXPECT_LT(worst, 1e-5) << world.size() << " ranks";
  EXPECT_NE(want.trained, before.trained) << "nothing trained";
}

TEST(FineTune, DataParallelWithFrozenLayersOnNRanksEqualsOneRank) {
  test::SharedDataset data({2, 6, 6});
  const TrainConfig c = frozen_run(data.path());
  TrainConfig alone = c;
  alone.batch = c.batch * test::world().size();
  alone.save_model.clear();
  expect_like_one_rank(c, alone);
}

TEST(FineTune, APipelineWithFrozenStagesEqualsOneRankAndCheckpointsNoStateForThem) {
  test::SharedDataset data({2, 6, 6});
  TrainConfig c = frozen_run(data.path());
  c.parallel.pipeline.stages = test::world().size();
  c.parallel.pipeline.micro_batches = 2;
  c.checkpoint_dir = data.path() + "/checkpoints";
  TrainConfig alone = frozen_run(data.path());
  alone.save_model.clear();
  expect_like_one_rank(c, alone);
  if (test::world().rank() != 0) return;
  Model m(kFinetunedNet, {2, 6, 6}, 3, 0);
  const CheckpointContents saved = read_checkpoint(CheckpointDir(c.checkpoint_dir, 3).path(20), m, {"momentum"});
  const std::vector<NamedParam> params = m.named_params();
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& momentum = saved.optimizer.tensors[i][0];
    const bool zero = std::all_of(momentum.data(), momentum.data() + momentum.numel(), [](float v) { return v == 0.0f; });
    EXPECT_EQ(zero, params[i].name.starts_with("conv1/") || params[i].name.starts_with("batchnorm1/")) << params[i].name;
  }
}

TEST(FineTune, ParameterServersWithFrozenLayersEqualOneRank) {
  test::SharedDataset data({2, 6, 6});
  TrainConfig c = frozen_run(data.path());
  c.parallel.mode = ModeKind::ps;
  c.parallel.ps.servers = test::world().size() >= 4 ? 2 : 1;
  c.parallel.ps.timeout_s = 60.0;
  TrainConfig alone = frozen_run(data.path());
  alone.batch = c.batch * (test::world().size() - c.parallel.ps.servers);
  alone.save_model.clear();
  expect_like_one_rank(c, alone);
}

// The same batch on every rank.
Batch batch_of(int step) {
  Batch b;
  b.x = test::random_tensor({4, 2, 6, 6}, 100 + static_cast<uint64_t>(step));
  b.y.labels = {0, 1, 2, static_cast<int32_t>(step % 3)};
  return b;
}

// The engine's byte count over 3 steps, with and without the first layers frozen.
int64_t bytes_allreduced(bool freeze, int64_t* trained_values) {
  Communicator& world = test::world();
  Model model(kFinetunedNet, {2, 6, 6}, 3, 1);
  if (freeze) model.freeze({0, 1, 2, 3});
  *trained_values = 0;
  for (const NamedParam& p : model.trained_params(model.all_layers())) *trained_values += p.param->value.numel();
  auto loss = make_loss(true);
  auto optimizer = make_optimizer({});
  std::ostringstream warnings;
  const OptimizerConfig config;
  DataParallel dp({}, world, {model, Device::cpu, *loss, *optimizer, config, 4, 1, nullptr, warnings, {}});
  for (int step = 0; step < 3; ++step) dp.train_step(batch_of(step), 0.05f);
  return dp.gradient_traffic().bytes;
}

TEST(FineTune, FrozenLayersGradientsStayOffTheWire) {
  int64_t all = 0, trained = 0;
  const int64_t whole = bytes_allreduced(false, &all), frozen = bytes_allreduced(true, &trained);
  EXPECT_EQ(whole, 3 * 4 * all);
  EXPECT_EQ(frozen, 3 * 4 * trained);
  EXPECT_LT(trained, all);
}

// What --timeline shows: rank 0's allreduce spans, each ending in its bytes, add up to the trained layers'
// gradients a step.
int64_t timeline_bytes_per_step(const std::string& path) {
  std::ifstream in(path);
  const std::string trace((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  static const std::regex allreduce(R"re("name":"ALLREDUCE [^"]*?(\d+) bytes","ph":"X","pid":0,)re");
  static const std::regex step(R"re("name":"step \d+","ph":"X","pid":0,)re");
  int64_t bytes = 0;
  for (std::sregex_iterator it(trace.begin(), trace.end(), allreduce), end; it != end; ++it) bytes += std::stoll((*it)[1]);
  const auto steps = std::distance(std::sregex_iterator(trace.begin(), trace.end(), step), std::sregex_iterator());
  return steps > 0 ? bytes / steps : -1;
}

TEST(FineTune, TheTimelineShowsTheFrozenGradientsOffTheWire) {
  test::SharedDataset data({2, 6, 6});
  int64_t bytes[2] = {0, 0}, expected[2] = {0, 0};
  for (const bool freeze : {false, true}) {
    TrainConfig c = frozen_run(data.path());
    if (!freeze) c.fine_tune.freeze.clear();
    c.save_model.clear();
    c.max_steps = 3;
    c.timeline = data.path() + "/trace.json";
    std::ostringstream quiet;
    Trainer trainer(c, test::world());
    for (const NamedParam& p : trainer.model().trained_params(trainer.model().all_layers()))
      expected[freeze] += 4 * p.param->value.numel();
    trainer.run(quiet);
    if (test::world().rank() == 0) bytes[freeze] = timeline_bytes_per_step(c.timeline);
    test::world().barrier();
  }
  if (test::world().rank() != 0) return;
  EXPECT_EQ(bytes[false], expected[false]);
  EXPECT_EQ(bytes[true], expected[true]);
  EXPECT_LT(expected[true], expected[false]);
}

}  // namespace
}  // namespace ringtrain
