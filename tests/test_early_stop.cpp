// Early stopping and regularisation around the training loop (train/monitor.hpp and the callbacks
// best_epoch, early_stop, best_model, l1_penalty): Keras's rules for an improvement, the epoch a run ends at
// and why, the best epoch's model file and a failed write of it, a resume that goes on counting bitwise, and
// the L1 penalty in the reported losses. The penalty's and label smoothing's arithmetic is pinned in
// test_optimizers.cpp and test_losses.cpp.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ringtrain/data/shard_set.hpp"
#include "ringtrain/nn/model.hpp"
#include "ringtrain/parallel/parallel_mode.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/callbacks.hpp"
#include "ringtrain/train/checkpoint.hpp"
#include "ringtrain/train/model_file.hpp"
#include "ringtrain/train/trainer.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::TempDir;

Score val_score(double loss, double metric) { return {loss * 10.0, metric * 10.0, 10}; }

// Keras's EarlyStopping._is_improvement: the loss and the MAE fall, accuracy rises, each by more than
// min_delta; the first finite value is the first best; NaN never improves.
TEST(BestEpoch, ImprovesAsKerasDecides) {
  BestEpoch loss;  // val_loss
  EXPECT_TRUE(loss.update(1, val_score(0.9, 0.1), 0.05));
  EXPECT_TRUE(loss.update(2, val_score(0.8, 0.1), 0.05));
  EXPECT_FALSE(loss.update(3, val_score(0.76, 0.9), 0.05)) << "better, but not by more than min_delta";
  EXPECT_FALSE(loss.update(4, val_score(0.75, 0.9), 0.05)) << "exactly min_delta is not more";
  EXPECT_FALSE(loss.update(5, val_score(NAN, 0.9), 0.05));
  EXPECT_EQ(loss.epoch, 2);
  EXPECT_DOUBLE_EQ(loss.value, 0.8);
  EXPECT_EQ(loss.epochs_since, 3);
  EXPECT_TRUE(loss.update(6, val_score(0.7, 0.0), 0.05));
  EXPECT_EQ(loss.epochs_since, 0);

  BestEpoch accuracy{Monitor::val_accuracy};
  EXPECT_TRUE(accuracy.update(1, val_score(5.0, 0.5), 0.0));
  EXPECT_FALSE(accuracy.update(2, val_score(0.1, 0.5), 0.0)) << "equal is not better";
  EXPECT_FALSE(accuracy.update(3, val_score(0.1, 0.4), 0.0)) << "accuracy falls: worse, whatever the loss";
  EXPECT_TRUE(accuracy.update(4, val_score(9.0, 0.6), 0.0));

  BestEpoch mae{Monitor::val_mae};
  EXPECT_TRUE(mae.update(1, val_score(1.0, 3.0), 0.0));
  EXPECT_TRUE(mae.update(2, val_score(9.0, 2.0), 0.0)) << "the MAE, not the loss";

  BestEpoch never;
  EXPECT_FALSE(never.update(1, val_score(NAN, 0.0), 0.0));
  EXPECT_FALSE(never.update(2, val_score(INFINITY, 0.0), 0.0));
  EXPECT_EQ(never.epoch, 0);
  EXPECT_EQ(never.epochs_since, 2);
}

TEST(BestEpoch, TheMonitorFitsItsTask) {
  EXPECT_TRUE(monitor_fits(Monitor::val_loss, true) && monitor_fits(Monitor::val_loss, false));
  EXPECT_TRUE(monitor_fits(Monitor::val_accuracy, true) && !monitor_fits(Monitor::val_accuracy, false));
  EXPECT_TRUE(monitor_fits(Monitor::val_mae, false) && !monitor_fits(Monitor::val_mae, true));
}

// What --l1 penalises: the weights of linear and conv layers, in blocks too; not biases or batchnorm's.
TEST(L1Penalty, KernelsAreTheLinearAndConvWeights) {
  Model model("conv(2,3,pad=1),batchnorm,relu,residual(conv(2,3,pad=1)),flatten,linear(out)", {1, 4, 4}, 3, 1);
  std::vector<std::string> kernels;
  for (const NamedParam& p : model.named_params())
    if (p.param->kernel) kernels.push_back(p.name);
  EXPECT_EQ(kernels, (std::vector<std::string>{"conv1/weight", "residual1/conv1/weight", "linear1/weight"}));
}

std::vector<Tensor> weights_of(Model& model) {
  std::vector<Tensor> weights;
  for (Param* p : model.params()) weights.push_back(p->value.to(Device::cpu));
  return weights;
}

// A checkpoint keeps the best epoch as it was, float64 and all, and refuses counts its epochs cannot hold.
TEST(BestEpoch, ACheckpointKeepsItWhole) {
  TempDir dir;
  Model model("flatten,linear(out)", {4}, 3, 7);
  const BestEpoch best{Monitor::val_accuracy, 3, 0.1 + 0.2, 2};
  write_checkpoint(dir.path("c.h5"), model, TargetSpace{}, InputTransform{}, {}, {60, 5, 5, 0, best}, {{"--model", model.spec()}});
  const TrainProgress back = read_checkpoint(dir.path("c.h5"), model, {}).progress;
  EXPECT_EQ(back.best.monitor, Monitor::val_accuracy);
  EXPECT_EQ(back.best.epoch, 3);
  EXPECT_EQ(back.best.value, 0.1 + 0.2) << "not rounded to a float";
  EXPECT_EQ(back.best.epochs_since, 2);
  write_checkpoint(dir.path("bad.h5"), model, TargetSpace{}, InputTransform{}, {}, {60, 2, 2, 0, best}, {{"--model", model.spec()}});
  try {
    read_checkpoint(dir.path("bad.h5"), model, {});
    ADD_FAILURE() << "a best epoch after the epochs finished was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("its progress does not add up (step 60, epoch 2, pass 2, pass_batch 0, "
                                         "optimizer_steps 0, best_epoch 3, epochs_since_best 2)"),
              std::string::npos)
        << e.what();
  }
}

// Keeps a copy of the model's weights at every epoch's end (extra callbacks run after the built-in ones).
class WeightsPerEpoch final : public Callback {
 public:
  WeightsPerEpoch(Trainer& trainer, std::vector<std::vector<Tensor>>& weights) : trainer_(trainer), weights_(weights) {}
  void on_epoch_end(TrainState&, EpochRecord&) override { weights_.push_back(weights_of(trainer_.model())); }

 private:
  Trainer& trainer_;
  std::vector<std::vector<Tensor>>& weights_;
};

bool same_weights(const std::vector<Param*>& params, const std::vector<Tensor>& weights) {
  if (params.size() != weights.size()) return false;
  for (size_t i = 0; i < params.size(); ++i) {
    const size_t bytes = sizeof(float) * static_cast<size_t>(weights[i].numel());
    if (std::memcmp(params[i]->value.data(), weights[i].data(), bytes) != 0) return false;
  }
  return true;
}

class EarlyStopping : public ::testing::Test {
 protected:
  // The validation split is the training split again: its loss falls while the model learns the (random)
  // samples by heart, every epoch a little less.
  void SetUp() override {
    for (const char* split : {"train", "val"})
      test::write_classification_shard(dir_.path(std::string(split) + "-00000.h5"), 96, {1, 3, 3}, 3, 1);
  }
  // 12 steps an epoch.
  TrainConfig config(int64_t epochs = 8) const {
    TrainConfig c = test::train_config(dir_.path(), {.model = "flatten,linear(8),relu,linear(out)", .batch = 8,
                                                     .epochs = epochs, .lr = 0.02f});
    return c;
  }
  TempDir dir_;
};

// With a --min-delta no later epoch beats, the first epoch stays the best: patience 2 ends the run after the
// third of eight, says why, and the result and the metrics CSV record it.
TEST_F(EarlyStopping, EndsTheRunAfterPatienceEpochsWithoutImprovement) {
  TrainConfig c = config();
  c.early_stop_patience = 2;
  c.min_delta = 10.0;
  c.metrics_csv = dir_.path("m.csv");
  std::ostringstream log;
  Trainer trainer(c, test::world());
  const TrainResult r = trainer.run(log);
  ASSERT_EQ(r.epochs.size(), 3u) << log.str();
  EXPECT_EQ(r.steps, 36);
  EXPECT_EQ(r.early_stopped_after, 3);
  EXPECT_EQ(r.best.epoch, 1);
  EXPECT_EQ(r.best.epochs_since, 2);
  EXPECT_EQ(r.best.value, r.epochs[0].val.loss());
  EXPECT_FALSE(r.stopped_early) << "that is a stop request's";
  char best[32];
  std::snprintf(best, sizeof best, "%.6g", r.epochs[0].val.loss());
  EXPECT_NE(log.str().find(std::string("early stopping: val_loss has not improved by more than 10 on ") + best +
                           " (epoch 1) for 2 epochs (--early-stop-patience 2); the run ends after epoch 3 of 8\n"),
            std::string::npos)
      << log.str();
  EXPECT_NE(log.str().find("trained 36 steps"), std::string::npos) << log.str();
  std::ifstream csv(c.metrics_csv);
  std::string header, row;
  std::getline(csv, header);
  EXPECT_NE(header.find(",best_epoch,epochs_without_improvement"), std::string::npos) << header;
  for (std::string line; std::getline(csv, line);) row = line;
  EXPECT_EQ(row.substr(row.size() - 4), ",1,2") << row;
}

// Improving epochs reset the count: with no --min-delta the falling loss improves every epoch, and the run
// goes on to its end, which early stopping does not claim.
TEST_F(EarlyStopping, ImprovingEpochsKeepTheRunGoing) {
  TrainConfig c = config(4);
  c.early_stop_patience = 1;
  std::ostringstream log;
  const TrainResult r = Trainer(c, test::world()).run(log);
  EXPECT_EQ(r.epochs.size(), 4u);
  EXPECT_EQ(r.early_stopped_after, 0);
  EXPECT_EQ(r.best.epoch, 4);
  EXPECT_EQ(log.str().find("early stopping"), std::string::npos) << log.str();
  // val_accuracy rises by steps of 1/96: a min_delta above the whole range never sees it improve again.
  c.monitor = Monitor::val_accuracy;
  c.min_delta = 1.0;
  const TrainResult a = Trainer(c, test::world()).run(log);
  EXPECT_EQ(a.early_stopped_after, 2);
  EXPECT_EQ(a.best.monitor, Monitor::val_accuracy);
  EXPECT_EQ(a.best.value, a.epochs[0].val.metric());
}

// --save-best holds the model as the best epoch left it, not the last epoch's, and says when it writes.
TEST_F(EarlyStopping, SaveBestWritesTheBestEpochsModel) {
  TrainConfig c = config(3);
  c.save_best = dir_.path("best.h5");
  c.min_delta = 10.0;  // only the first epoch improves
  std::vector<std::vector<Tensor>> weights;
  Trainer trainer(c, test::world());
  trainer.add_callback(std::make_unique<WeightsPerEpoch>(trainer, weights));
  std::ostringstream log;
  const TrainResult r = trainer.run(log);
  ASSERT_EQ(weights.size(), 3u);
  EXPECT_EQ(r.best.epoch, 1);
  EXPECT_EQ(r.early_stopped_after, 0) << "--save-best alone stops nothing";
  const LoadedModel best = load_model(c.save_best);
  EXPECT_TRUE(same_weights(best.model->params(), weights[0]));
  EXPECT_FALSE(same_weights(best.model->params(), weights[2]));
  EXPECT_NE(log.str().find("  best so far (val_loss "), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("): saved to " + c.save_best + "\n"), std::string::npos) << log.str();

  // Without --min-delta every epoch improves here, and the file follows them to the last.
  c.min_delta = 0.0;
  weights.clear();
  Trainer again(c, test::world());
  again.add_callback(std::make_unique<WeightsPerEpoch>(again, weights));
  EXPECT_EQ(again.run(log).best.epoch, 3);
  EXPECT_TRUE(same_weights(load_model(c.save_best).model->params(), weights[2]));
}

// From the next epoch on, no file larger than a kilobyte can be written (as a full disk would have it).
class FileSizeLimit final : public Callback {
 public:
  void on_epoch_end(TrainState&, EpochRecord&) override {
    if (limited_) return;
    ::getrlimit(RLIMIT_FSIZE, &before_);
    rlimit small = before_;
    small.rlim_cur = 1024;
    previous_ = std::signal(SIGXFSZ, SIG_IGN);  // a write past the limit fails with EFBIG instead
    limited_ = ::setrlimit(RLIMIT_FSIZE, &small) == 0;
  }
  ~FileSizeLimit() override {
    if (!limited_) return;
    ::setrlimit(RLIMIT_FSIZE, &before_);
    std::signal(SIGXFSZ, previous_);
  }

 private:
  bool limited_ = false;
  rlimit before_{};
  void (*previous_)(int) = nullptr;
};

// A failed write of a new best (the second epoch's) ends the run with an error naming the file, and keeps
// the first epoch's model there whole, with no temporary left beside it.
TEST_F(EarlyStopping, AFailedSaveBestKeepsThePreviousBestAndEndsTheRun) {
  TrainConfig c = config(3);
  c.save_best = dir_.path("best.h5");
  std::vector<std::vector<Tensor>> weights;
  std::string error;
  {
    Trainer trainer(c, test::world());
    trainer.add_callback(std::make_unique<WeightsPerEpoch>(trainer, weights));
    trainer.add_callback(std::make_unique<FileSizeLimit>());
    std::ostringstream log;
    try {
      trainer.run(log);
    } catch (const CollectiveError& e) {
      error = e.what();
    }
  }
  EXPECT_NE(error.find("cannot write '" + c.save_best + "'"), std::string::npos) << error;
  EXPECT_NE(error.find("(the previous file, if any, is kept)"), std::string::npos) << error;
  ASSERT_EQ(weights.size(), 1u) << "the run went on after the failed write";
  EXPECT_TRUE(same_weights(load_model(c.save_best).model->params(), weights[0]));
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path()))
    EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << entry.path();
}

// A run cut mid-epoch and resumed goes on counting from its checkpoint's best epoch: it stops after the same
// epoch, bitwise as the uninterrupted run, and its best model is the same; resuming the finished run's last
// checkpoint trains nothing.
TEST_F(EarlyStopping, ResumedRunsStopAfterTheSameEpochBitwise) {
  // Validation samples of their own, which the model learns nothing about: its loss falls a little, then rises.
  test::write_classification_shard(dir_.path("val-00000.h5"), 96, {1, 3, 3}, 3, 2);
  TrainConfig c = config();
  c.early_stop_patience = 2;
  c.optimizer.kind = OptimizerKind::adam;
  c.lr = 0.01f;
  c.save_best = dir_.path("whole-best.h5");
  std::ostringstream log;
  Trainer whole(c, test::world());
  const TrainResult expected = whole.run(log);
  ASSERT_GT(expected.early_stopped_after, 2) << "the test needs a run that improves, then stops: " << log.str();
  ASSERT_LT(expected.early_stopped_after, 8) << log.str();

  // Cut in the epoch after the best one, resumed from the checkpoints every 5 steps.
  const int64_t cut_at = expected.best.epoch * 12 + 7;
  TrainConfig cut = c;
  cut.save_best = dir_.path("best.h5");
  cut.checkpoint_dir = dir_.path("checkpoints");
  cut.checkpoint_every = 5;
  cut.max_steps = cut_at;
  Trainer(cut, test::world()).run(log);
  TrainConfig rest = cut;
  rest.max_steps = 0;
  rest.resume = {ResumeFrom::newest, ""};
  {
    std::ostringstream resumed_log;
    Trainer resumed(rest, test::world());  // holds the checkpoint directory's lock while it lives
    const TrainResult r = resumed.run(resumed_log);
    EXPECT_NE(resumed_log.str().find("resuming from " + CheckpointDir(cut.checkpoint_dir, 3).path(cut_at)),
              std::string::npos)
        << resumed_log.str();
    EXPECT_EQ(r.early_stopped_after, expected.early_stopped_after) << resumed_log.str();
    EXPECT_EQ(r.best.epoch, expected.best.epoch);
    EXPECT_EQ(r.best.value, expected.best.value);
    EXPECT_EQ(r.steps, expected.steps);
    EXPECT_TRUE(same_weights(resumed.model().params(), weights_of(whole.model())));
  }
  const LoadedModel best = load_model(c.save_best);
  EXPECT_TRUE(same_weights(load_model(rest.save_best).model->params(), weights_of(*best.model)));

  // The finished run's last checkpoint records that early stopping ended it.
  std::ostringstream again_log;
  const TrainResult again = Trainer(rest, test::world()).run(again_log);
  EXPECT_EQ(again.steps, expected.steps);
  EXPECT_EQ(again.early_stopped_after, expected.early_stopped_after);
  EXPECT_NE(again_log.str().find("early stopping ended the checkpoint's run after epoch " +
                                 std::to_string(expected.early_stopped_after) + " (val_loss has not improved"),
            std::string::npos)
      << again_log.str();
  EXPECT_NE(again_log.str().find("): nothing to train\n"), std::string::npos) << again_log.str();
  // Watching another metric starts its count afresh.
  rest.monitor = Monitor::val_accuracy;
  rest.min_delta = 0.0;
  std::ostringstream other_log;
  Trainer(rest, test::world()).run(other_log);
  EXPECT_NE(other_log.str().find("the checkpoint's best epoch was by val_loss; --monitor val_accuracy counts afresh"),
            std::string::npos)
      << other_log.str();
}

// The flags end to end, from a config file as from the command line.
TEST_F(EarlyStopping, TheFlagsWorkThroughTheCli) {
  std::ofstream(dir_.path("run.ini")) << "early-stop-patience = 1\nmin-delta = 10\nmonitor = val_accuracy\n";
  std::string out, err;
  const int code = test::run_cli("train --config " + dir_.path("run.ini") + " --data " + dir_.path() +
                                     " --model 'flatten,linear(out)' --batch 8 --epochs 5 --save-best " +
                                     dir_.path("best.h5") + " --l1 1e-4 --label-smoothing 0.1",
                                 &out, &err);
  ASSERT_EQ(code, 0) << err;
  EXPECT_NE(out.find("early stopping: val_accuracy has not improved by more than 10 on "), std::string::npos) << out;
  EXPECT_NE(out.find("for 1 epoch (--early-stop-patience 1); the run ends after epoch 2 of 5"), std::string::npos)
      << out;
  EXPECT_NE(out.find("  l1 penalty "), std::string::npos) << out;
  EXPECT_TRUE(std::filesystem::exists(dir_.path("best.h5")));
}

// The epoch's loss and val_loss carry --l1's penalty of the epoch's final weights, as Keras's do: val_loss is
// the validation data's loss plus lambda x sum |w| over the kernels alone.
TEST_F(EarlyStopping, TheReportedLossesCarryTheL1Penalty) {
  TrainConfig c = config(1);
  c.optimizer.l1 = 0.01f;
  c.metrics_csv = dir_.path("m.csv");
  std::ostringstream log;
  Trainer trainer(c, test::world());
  const TrainResult r = trainer.run(log);
  double norm = 0.0;
  for (const NamedParam& p : trainer.model().named_params())
    if (p.name == "linear1/weight" || p.name == "linear2/weight")
      for (int64_t i = 0; i < p.param->value.numel(); ++i) norm += std::fabs(p.param->value[i]);
  const double penalty = 0.01 * norm;
  auto val = ShardSet::open(dir_.path("val-00000.h5"));
  auto loss = make_loss(true);
  auto loader = make_eval_loader(val, c, {});
  const Score data = score_batches(trainer.model(), *loss, *loader);
  EXPECT_NEAR(r.epochs[0].val.loss(), data.loss() + penalty, 1e-6);
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", penalty);
  EXPECT_NE(log.str().find(std::string("  l1 penalty ") + text + " (in the loss and val_loss above)\n"),
            std::string::npos)
      << log.str();
  std::ifstream csv(c.metrics_csv);
  std::string header;
  std::getline(csv, header);
  EXPECT_NE(header.find(",l1_penalty"), std::string::npos) << header;
}

}  // namespace
}  // namespace ringtrain
