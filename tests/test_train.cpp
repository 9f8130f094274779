#include <gtest/gtest.h>

#include <cstring>

#include <cmath>
#include <fstream>
#include <sstream>

#include "ringtrain/data/prep.hpp"
#include "ringtrain/data/shard_set.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/eval.hpp"
#include "ringtrain/train/model_file.hpp"
#include "ringtrain/train/trainer.hpp"
#include "test_util.hpp"

namespace ringtrain {
namespace {

using test::TempDir;

// A separable 3-class problem: the label is the argmax of the first three features.
void write_blobs(const std::string& dir) {
  for (const char* split : {"train", "val", "test"}) {
    ShardMeta meta;
    meta.samples = split[1] == 'r' ? 600 : 120;
    meta.sample_shape = {4};
    meta.x_type = PixelType::f32;
    meta.num_classes = 3;
    ShardData data;
    Rng rng(split[0]);
    for (int64_t i = 0; i < meta.samples; ++i) {
      float best = -1;
      int64_t label = 0;
      for (int64_t f = 0; f < 4; ++f) {
        const float v = rng.uniform(-1.0f, 1.0f);
        data.x_f32.push_back(v);
        if (f < 3 && v > best) best = v, label = f;
      }
      data.labels.push_back(label);
    }
    write_shard(dir + "/" + split + "-00000.h5", meta, data);
  }
}

TrainConfig blob_config(const std::string& dir) {
  return test::train_config(dir, {.model = "flatten,linear(32),relu,linear(out)", .batch = 16, .epochs = 8});
}

// --steps shorter than --epochs: the cosine schedule reaches --lr-min at the run's last step, not at the end of
// epochs it will never train, and the epoch line says the epoch was cut (issue 18).
TEST(Trainer, SchedulesSpanTheStepsTheRunMakesAndACutEpochSaysSo) {
  TempDir dir;
  write_blobs(dir.path());
  TrainConfig c = blob_config(dir.path());  // 37 steps per epoch, 8 epochs
  c.max_steps = 20;
  c.lr_schedule = LrScheduleKind::cosine;
  c.lr_min = 0.001f;
  std::ostringstream log;
  const TrainResult r = Trainer(c, test::world()).run(log);
  ASSERT_EQ(r.epochs.size(), 1u);
  EXPECT_EQ(r.steps, 20);
  // The last step's rate: cosine at step 19 of 20, a hair above lr_min (it was 0.0499 before, a full rate).
  EXPECT_LT(r.epochs.back().lr, 0.002);
  EXPECT_NE(log.str().find("epoch 1/8 (ended by --steps after 20 of 37 steps)"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("--steps 20 ends the run in epoch 1 of 8"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("trained 20 steps in "), std::string::npos) << log.str();
}

TEST(Trainer, LearnsASeparableProblemAndWritesMetrics) {
  TempDir dir;
  write_blobs(dir.path());
  TrainConfig c = blob_config(dir.path());
  c.metrics_csv = dir.path("metrics.csv");
  std::ostringstream log;
  const TrainResult r = Trainer(c, test::world()).run(log);
  ASSERT_EQ(r.epochs.size(), 8u);
  EXPECT_LT(r.epochs.back().train.loss(), r.epochs.front().train.loss());
  EXPECT_GT(r.epochs.back().val.metric(), 0.9);
  EXPECT_GT(r.test.metric(), 0.9);
  EXPECT_EQ(r.steps, 8 * (600 / 16));
  std::ifstream csv(c.metrics_csv);
  std::string header, line;
  std::getline(csv, header);
  EXPECT_EQ(header, "epoch,step,lr,train_loss,train_accuracy,val_loss,val_accuracy,images_per_s,epoch_seconds,elapsed_seconds");
  int rows = 0;
  while (std::getline(csv, line)) ++rows;
  EXPECT_EQ(rows, 8);
  EXPECT_NE(log.str().find("epoch 8/8"), std::string::npos);
}

TEST(Trainer, SameSeedGivesABitwiseIdenticalRun) {
  TempDir dir;
  write_blobs(dir.path());
  TrainConfig c = blob_config(dir.path());
  c.model = "flatten,linear(16),batchnorm,tanh,dropout(0.2),linear(out)";
  c.epochs = 2;
  c.optimizer.kind = OptimizerKind::adam;
  c.lr = 0.01f;
  std::ostringstream log;
  Trainer a(c, test::world()), b(c, test::world());
  a.run(log);
  b.run(log);
  const auto pa = a.model().params(), pb = b.model().params();
  for (size_t i = 0; i < pa.size(); ++i)
    EXPECT_EQ(0, std::memcmp(pa[i]->value.data(), pb[i]->value.data(), sizeof(float) * pa[i]->value.numel()));
  c.seed = 1;
  Trainer other(c, test::world());
  other.run(log);
  EXPECT_NE(0, std::memcmp(pa[0]->value.data(), other.model().params()[0]->value.data(),
                           sizeof(float) * pa[0]->value.numel()));
}

TEST(Trainer, SavedModelRoundTripsAndEvalScoresIt) {
  TempDir dir;
  write_blobs(dir.path());
  TrainConfig c = blob_config(dir.path());
  c.model = "flatten,linear(8),batchnorm,relu,linear(out)";
  c.save_model = dir.path("model.h5");
  std::ostringstream log;
  Trainer trainer(c, test::world());
  const TrainResult r = trainer.run(log);
  const LoadedModel loaded = load_model(c.save_model);
  EXPECT_EQ(loaded.model->spec(), trainer.model().spec());
  EXPECT_TRUE(loaded.targets.classification);
  EvalConfig e;
  e.model_file = c.save_model;
  e.data.dir = dir.path();
  const Score s = evaluate_saved_model(e, test::world(), log);
  EXPECT_EQ(s.samples, 120);
  EXPECT_DOUBLE_EQ(s.metric(), r.test.metric());
  EXPECT_NEAR(s.loss(), r.test.loss(), 1e-9);
}

// One stage and M micro-batches is gradient accumulation: the same weights as whole batches.
TEST(Trainer, MicroBatchesOnOneRankAccumulateToTheWholeBatch) {
  TempDir dir;
  write_blobs(dir.path());
  TrainConfig c = blob_config(dir.path());
  c.epochs = 1;
  c.optimizer.kind = OptimizerKind::adam;
  c.lr = 0.01f;
  std::ostringstream log;
  Trainer whole(c, test::world());
  whole.run(log);
  c.parallel.pipeline.micro_batches = 4;
  Trainer micro(c, test::world());
  micro.run(log);
  const auto a = whole.model().params(), b = micro.model().params();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    for (int64_t k = 0; k < a[i]->value.numel(); ++k) ASSERT_NEAR(a[i]->value[k], b[i]->value[k], 1e-5);
  EXPECT_NE(log.str().find("pipeline busy"), std::string::npos);
}

TEST(Trainer, BadSetupsFailBeforeTraining) {
  TempDir dir;
  write_blobs(dir.path());
  auto error_of = [&](TrainConfig c) {
    try {
      std::ostringstream log;
      Trainer(c, test::world()).run(log);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  TrainConfig c = blob_config(dir.path());
  c.model = "flatten,linear(5)";
  EXPECT_NE(error_of(c).find("produces 5 outputs per sample but the data needs 3"), std::string::npos);
  c = blob_config(dir.path());
  c.batch = 1000;
  EXPECT_NE(error_of(c).find("fewer than one batch of 1000"), std::string::npos);
  c = blob_config(dir.path("nowhere"));
  EXPECT_NE(error_of(c).find("no training shards"), std::string::npos);
  c = blob_config(dir.path());
  c.lr = 0.0f;
  EXPECT_NE(error_of(c).find("--lr must be positive, got 0"), std::string::npos);
  c = blob_config(dir.path());
  c.save_model = dir.path("no/such/dir/model.h5");
  EXPECT_NE(error_of(c).find("cannot write the model"), std::string::npos);
  c = blob_config(dir.path());
  c.parallel.pipeline.stages = 2;
  EXPECT_NE(error_of(c).find("a world of 1 rank is not divisible by --pipeline-stages 2"), std::string::npos);
  c = blob_config(dir.path());
  c.parallel.pipeline.micro_batches = 3;
  EXPECT_NE(error_of(c).find("--batch 16 is not divisible by --micro-batches 3"), std::string::npos);
}

TEST(Trainer, LinearRegressionMatchesLeastSquares) {
  // y = 3 a - 2 b + 0.5 c + 1 + noise, from CSV through prep and the linreg preset.
  TempDir dir;
  {
    std::ofstream csv(dir.path("lin.csv"));
    csv << "a,b,c,y\n";
    Rng rng(4);
    for (int i = 0; i < 400; ++i) {
      const double a = rng.uniform(-2, 2), b = rng.uniform(0, 5), cc = rng.uniform(-1, 1);
      csv << a << "," << b << "," << cc << "," << 3 * a - 2 * b + 0.5 * cc + 1 + 0.1 * rng.uniform(-1, 1) << "\n";
    }
  }
  PrepConfig p;
  p.format = PrepFormat::csv;
  p.input = dir.path("lin.csv");
  p.out_dir = dir.path("data");
  p.target = "y";
  p.shards = 2;
  prep(p);
  TrainConfig c = test::train_config(p.out_dir, {.model = "linreg", .batch = 16, .epochs = 60});
  c.lr_schedule = LrScheduleKind::cosine;
  c.save_model = dir.path("lin.h5");
  std::ostringstream log;
  Trainer trainer(c, test::world());
  const TrainResult r = trainer.run(log);
  EXPECT_NE(log.str().find("mae"), std::string::npos);

  // Least squares on the same normalised training features and standardised targets, by the normal equations
  // (4x4, doubles): the model trains on targets as the shards' y_scale/y_shift give them.
  const ShardSet train = ShardSet::open(ShardSet::split_pattern(p.out_dir, Split::train));
  double ata[4][4] = {}, aty[4] = {};
  for (const ShardMeta& m : train.shards()) {
    const ShardData d = read_shard_data(m);
    EXPECT_NE(m.y_scale, 1.0f) << "prep standardises a regression target";
    for (int64_t i = 0; i < m.samples; ++i) {
      const double target = d.targets[static_cast<size_t>(i)] * m.y_scale + m.y_shift;
      double row[4] = {0, 0, 0, 1};
      for (int f = 0; f < 3; ++f)
        row[f] = d.x_f32[static_cast<size_t>(i * 3 + f)] * m.x_scale[static_cast<size_t>(f)] + m.x_shift[static_cast<size_t>(f)];
      for (int j = 0; j < 4; ++j) {
        aty[j] += row[j] * target;
        for (int k = 0; k < 4; ++k) ata[j][k] += row[j] * row[k];
      }
    }
  }
  for (int col = 0; col < 4; ++col)  // Gauss-Jordan; the normal matrix is positive definite
    for (int row = 0; row < 4; ++row) {
      if (row == col) continue;
      const double f = ata[row][col] / ata[col][col];
      for (int k = 0; k < 4; ++k) ata[row][k] -= f * ata[col][k];
      aty[row] -= f * aty[col];
    }
  const auto params = trainer.model().params();
  for (int f = 0; f < 3; ++f) EXPECT_NEAR(params[0]->value[f], aty[f] / ata[f][f], 1e-3) << "coefficient " << f;
  EXPECT_NEAR(params[1]->value[0], aty[3] / ata[3][3], 1e-3) << "intercept";
  EXPECT_LT(r.test.metric(), 0.1);  // MAE near the noise level (uniform in +-0.1), in the target's own units
  EXPECT_GT(r.test.metric(), 0.02);

  // The model file carries the standardisation: eval scores in the target's units too, and refuses data
  // whose targets were standardised otherwise (another prep's splits).
  const LoadedModel loaded = load_model(c.save_model);
  EXPECT_FALSE(loaded.targets.classification);
  EXPECT_EQ(loaded.targets.scale, train.meta().y_scale);
  EvalConfig e;
  e.model_file = c.save_model;
  e.data.dir = p.out_dir;
  EXPECT_NEAR(evaluate_saved_model(e, test::world(), log).metric(), r.test.metric(), 1e-9);
  p.out_dir = dir.path("other");
  p.seed = 7;
  prep(p);
  e.data.dir = p.out_dir;
  try {
    evaluate_saved_model(e, test::world(), log);
    ADD_FAILURE() << "data standardised otherwise must be refused";
  } catch (const std::exception& ex) {
    EXPECT_NE(std::string(ex.what()).find("standardised differently"), std::string::npos) << ex.what();
  }
}

}  // namespace
}  // namespace ringtrain
