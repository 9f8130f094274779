// Parameter servers under mpirun: np2 = 1 worker + 1 server, np3 = 2 workers + 1 server, np4 = 2 workers +
// 2 servers (the parameters sharded). Staleness 0 reaches the weights of synchronous data parallel with the
// same global batch; with staleness S and a straggler every push is applied exactly once, no update is
// staler than S, and every rank shuts down cleanly.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "ringtrain/comm/mpi_communicator.hpp"
#include "ringtrain/train/model_file.hpp"
#include "ringtrain/train/trainer.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

int servers_for(int world) { return world >= 4 ? 2 : 1; }

TrainConfig ps_config(const std::string& data, int staleness,
                      const std::string& model = "flatten,linear(16),relu,linear(out)") {
  TrainConfig c = test::train_config(data, {.model = model, .epochs = 2, .weight_decay = 1e-4f});
  c.optimizer.l1 = 1e-4f;  // the servers' slices of the kernels are penalised as the kernels themselves
  c.parallel.mode = ModeKind::ps;
  c.parallel.ps.servers = servers_for(test::world().size());
  c.parallel.ps.staleness = staleness;
  c.parallel.ps.timeout_s = 60.0;
  return c;
}

std::vector<float> weights_of(Model& model) { return test::flat_weights(model.params()); }

// One column of the metrics CSV, every epoch.
std::vector<std::string> csv_column(const std::string& path, const std::string& name) {
  std::ifstream in(path);
  std::string line, cell;
  std::getline(in, line);
  std::istringstream header(line);
  int index = 0, wanted = -1;
  while (std::getline(header, cell, ',')) {
    if (cell == name) wanted = index;
    ++index;
  }
  std::vector<std::string> out;
  while (std::getline(in, line)) {
    std::istringstream row(line);
    for (int i = 0; std::getline(row, cell, ','); ++i)
      if (i == wanted) out.push_back(cell);
  }
  return out;
}

// `steps` > 0 ends the run there (--steps), else it runs 2 epochs.
void expect_staleness_zero_equals_synchronous(const std::string& model, const test::SharedDataset& data,
                                              int64_t steps = 0) {
  Communicator& world = test::world();
  TrainConfig c = ps_config(data.path(), 0, model);
  c.max_steps = steps;
  c.save_model = data.path() + "/ps.h5";
  std::ostringstream quiet;
  const TrainResult served = Trainer(c, world).run(quiet);
  if (world.rank() != 0) return;

  // Data parallel over W ranks equals one rank with W x the batch (tests/mpi/test_data_parallel.cpp).
  const int workers = world.size() - c.parallel.ps.servers;
  TrainConfig sync = c;
  sync.parallel = {};
  sync.batch = c.batch * workers;
  sync.save_model.clear();
  MpiCommunicator self(MPI_COMM_SELF);
  Trainer reference(sync, self);
  const TrainResult alone = reference.run(quiet);

  const std::vector<float> got = weights_of(*load_model(c.save_model).model), want = weights_of(reference.model());
  ASSERT_EQ(got.size(), want.size());
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(double(got[i]) - want[i]));
  EXPECT_LT(worst, 1e-5) << model << ": " << workers << " workers, " << c.parallel.ps.servers << " servers";
  EXPECT_EQ(served.epochs.back().step * workers, alone.epochs.back().step * workers);
  EXPECT_NEAR(served.test.loss_sum, alone.test.loss_sum, 1e-4 * alone.test.loss_sum);
}

TEST(ParameterServer, StalenessZeroEqualsSynchronousDataParallel) {
  expect_staleness_zero_equals_synchronous("flatten,linear(16),relu,linear(out)", test::SharedDataset({2, 4, 4}));
}

TEST(ParameterServer, ResidualNetWithStalenessZeroEqualsSynchronousDataParallel) {
  expect_staleness_zero_equals_synchronous(test::kResidualNet, test::SharedDataset({2, 6, 6}));
}

// A GPT on token windows, its parameters sharded over the servers on np4; and tied to its embedding, whose
// one table the servers update with both ends' gradients.
TEST(ParameterServer, TransformerWithStalenessZeroEqualsSynchronousDataParallel) {
  const test::SharedDataset data(test::TokenWindows{});
  expect_staleness_zero_equals_synchronous(test::kTinyGpt, data, 20);
  expect_staleness_zero_equals_synchronous(test::kTinyTiedGpt, data, 20);
}

TEST(ParameterServer, EveryPushIsAppliedOnceAndNoneIsStalerThanTheBound) {
  Communicator& world = test::world();
  test::SharedDataset data({2, 4, 4});
  constexpr int kBound = 2;
  TrainConfig c = ps_config(data.path(), kBound);
  c.epochs = 3;
  c.straggler_rank = world.size() > 2 + (world.size() >= 4) ? 1 : -1;  // with two workers, the second is slow
  c.straggler_ms = 2.0;
  c.metrics_csv = data.path() + "/ps.csv";
  std::ostringstream quiet;
  const TrainResult r = Trainer(c, world).run(quiet);
  double steps = static_cast<double>(r.steps);  // a worker's own steps; 0 on servers
  world.allreduce_sum(&steps, 1);
  if (world.rank() != 0) return;
  int64_t updates = 0;
  for (const std::string& u : csv_column(c.metrics_csv, "ps_updates")) updates += std::stoll(u);
  EXPECT_EQ(updates, static_cast<int64_t>(steps)) << "every worker step is one update, applied once";
  for (const std::string& worst : csv_column(c.metrics_csv, "ps_staleness_max")) EXPECT_LE(std::stoi(worst), kBound);
  EXPECT_LT(r.epochs.back().train.loss(), r.epochs.front().train.loss()) << "it learns";
}

}  // namespace
}  // namespace ringtrain
