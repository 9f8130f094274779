// validate (train/validate.hpp): every rule of a training or evaluation configuration, in one place, each
// broken one named by its flag.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/train/validate.hpp"

namespace ringtrain {
namespace {

std::string error_of(const TrainConfig& c, int world) {
  try {
    validate(c, world);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string stages_error(const PipelineConfig& p, size_t layers) {
  try {
    validate_stages(p, layers);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// One rule broken at a time, from the defaults (which pass).
TEST(Validate, NamesEachBrokenRuleOfATrainingRun) {
  EXPECT_EQ(error_of(TrainConfig{}, 1), "");
  const std::pair<void (*)(TrainConfig&), const char*> cases[] = {
      {[](TrainConfig& c) { c.batch = 0; }, "--batch must be at least 1"},
      {[](TrainConfig& c) { c.timeline_steps = {3, 5}; }, "--timeline-steps needs --timeline FILE (the trace it limits)"},
      {[](TrainConfig& c) { c.timeline = "t.json", c.timeline_steps = {5, 3}; }, "--timeline-steps 5:3 ends before it begins"},
      {[](TrainConfig& c) { c.epochs = 0; }, "--epochs must be at least 1"},
      {[](TrainConfig& c) { c.threads = 0; }, "--threads must be at least 1"},
      {[](TrainConfig& c) { c.lr = 0.0f; }, "--lr must be positive, got 0"},
      {[](TrainConfig& c) { c.lr = -0.5f; }, "--lr must be positive, got -0.5"},
      {[](TrainConfig& c) { c.warmup_epochs = -1.0; }, "--warmup-epochs must not be negative"},
      {[](TrainConfig& c) { c.checkpoint_every = -1; }, "--checkpoint-every must not be negative"},
      {[](TrainConfig& c) { c.keep_checkpoints = 0; }, "--keep-checkpoints must be at least 1"},
      {[](TrainConfig& c) { c.checkpoint_every = 10; }, "--checkpoint-every needs --checkpoint-dir"},
      {[](TrainConfig& c) { c.resume = {ResumeFrom::newest, ""}; }, "--resume auto needs --checkpoint-dir"},
      {[](TrainConfig& c) { c.peer_timeout_s = -1.0; }, "--peer-timeout-s must not be negative"},
      {[](TrainConfig& c) { c.parallel.engine.fusion_bytes = 0; }, "--fusion-mb must be positive"},
      {[](TrainConfig& c) { c.parallel.engine.cycle_ms = 0.0; }, "--cycle-ms must be positive"},
      {[](TrainConfig& c) { c.parallel.engine.stall_warn_s = -1.0; }, "--stall-warn-s must not be negative"},
      {[](TrainConfig& c) { c.parallel.pipeline.stages = 0; }, "--pipeline-stages must be at least 1, got 0"},
      {[](TrainConfig& c) { c.parallel.pipeline.micro_batches = 0; }, "--micro-batches must be at least 1, got 0"},
      {[](TrainConfig& c) { c.parallel.pipeline.micro_batches = 5; }, "--batch 64 is not divisible by --micro-batches 5"},
      {[](TrainConfig& c) { c.parallel.ps.servers = 0; }, "--ps-servers must be at least 1, got 0"},
      {[](TrainConfig& c) { c.parallel.ps.staleness = -2; }, "--staleness must be at least 0, got -2"},
      {[](TrainConfig& c) { c.parallel.ps.timeout_s = 0.0; }, "--ps-timeout-s must be positive"},
      {[](TrainConfig& c) { c.straggler_ms = -1.0; }, "--straggler-ms must not be negative"},
      {[](TrainConfig& c) { c.straggler_rank = 1; }, "--straggler-rank 1 is outside the job's ranks 0..0 (-1: none)"},
      {[](TrainConfig& c) { c.straggler_rank = -2; }, "--straggler-rank -2 is outside the job's ranks"},
      {[](TrainConfig& c) { c.max_steps = -1; }, "--steps must not be negative, got -1"},
      {[](TrainConfig& c) { c.log_every = -5; }, "--log-every must not be negative, got -5"},
      {[](TrainConfig& c) { c.batch = int64_t{1} << 30; }, "--batch must be at most 16777216, got 1073741824"},
      {[](TrainConfig& c) { c.epochs = int64_t{1} << 40; }, "--epochs must be at most 1000000"},
      {[](TrainConfig& c) { c.lr_step_epochs = 1e16; }, "--lr-step-epochs must be at most 1000000, got 1e+16"},
      {[](TrainConfig& c) { c.warmup_epochs = 1e300; }, "--warmup-epochs must be at most 1000000"},
      {[](TrainConfig& c) { c.optimizer.weight_decay = INFINITY; }, "--weight-decay must be a finite number, got inf"},
      {[](TrainConfig& c) { c.straggler_ms = 1e30; }, "--straggler-ms must be at most 3600000, got 1e+30"},
      {[](TrainConfig& c) { c.peer_timeout_s = 1e9; }, "--peer-timeout-s must be at most 1000000"},
      {[](TrainConfig& c) { c.parallel.ps.timeout_s = 1e9; }, "--ps-timeout-s must be at most 1000000"},
      {[](TrainConfig& c) { c.parallel.engine.cycle_ms = 1e9; }, "--cycle-ms must be at most 10000"},
      {[](TrainConfig& c) { c.parallel.engine.stall_warn_s = 1e9; }, "--stall-warn-s must be at most 1000000"},
      {[](TrainConfig& c) { c.data.prefetch = 100000; }, "--prefetch must be at most 1024"},
      {[](TrainConfig& c) { c.threads = 100000; }, "--threads must be at most 4096"},
      {[](TrainConfig& c) { c.keep_checkpoints = 2000000000; }, "--keep-checkpoints must be at most 1000000"},
      {[](TrainConfig& c) { c.lr = std::numeric_limits<float>::infinity(); }, "--lr must be positive, got inf"},
      {[](TrainConfig& c) { c.lr = std::nanf(""); }, "--lr must be positive, got nan"},
      {[](TrainConfig& c) { c.warmup_epochs = std::numeric_limits<double>::infinity(); },
       "--warmup-epochs must be a finite number, got inf"},
      {[](TrainConfig& c) { c.lr_step_epochs = 0.0; }, "--lr-step-epochs must be positive, got 0"},
      {[](TrainConfig& c) { c.lr_gamma = 0.0f; }, "--lr-gamma must be in (0, 1], got 0"},
      {[](TrainConfig& c) { c.lr_gamma = 2.0f; }, "--lr-gamma must be in (0, 1], got 2"},
      {[](TrainConfig& c) { c.lr_min = -0.1f; }, "--lr-min must not be negative, got -0.1"},
      {[](TrainConfig& c) { c.lr_min = 0.5f; }, "--lr-min 0.5 must be below --lr 0.05"},
      {[](TrainConfig& c) { c.optimizer.momentum = -1.0f; }, "--momentum must be in [0, 1), got -1"},
      {[](TrainConfig& c) { c.optimizer.momentum = 1.0f; }, "--momentum must be in [0, 1), got 1"},
      {[](TrainConfig& c) { c.optimizer.momentum = 0.0f, c.optimizer.nesterov = true; },
       "--nesterov needs a --momentum above 0"},
      {[](TrainConfig& c) { c.optimizer.weight_decay = -1e-4f; }, "--weight-decay must not be negative, got -0.0001"},
      {[](TrainConfig& c) { c.optimizer.beta1 = 1.0f; }, "--beta1 must be in [0, 1), got 1"},
      {[](TrainConfig& c) { c.optimizer.beta2 = -0.5f; }, "--beta2 must be in [0, 1), got -0.5"},
      {[](TrainConfig& c) { c.optimizer.alpha = 1.5f; }, "--alpha must be in [0, 1), got 1.5"},
      {[](TrainConfig& c) { c.optimizer.eps = 0.0f; }, "--eps must be positive, got 0"},
      {[](TrainConfig& c) { c.data.prefetch = -1; }, "--prefetch must not be negative, got -1"},
      {[](TrainConfig& c) { c.data.window_shards = -3; }, "--shuffle-window must not be negative, got -3"},
      {[](TrainConfig& c) { c.device.gpu = -2; }, "--gpu must be a GPU index, or -1 for the node-local rank's, got -2"},
      {[](TrainConfig& c) { c.parallel.engine.cycle_ms = std::nan(""); }, "--cycle-ms must be positive, got nan"},
      // Early stopping and regularisation.
      {[](TrainConfig& c) { c.early_stop_patience = 0; }, "--early-stop-patience must be at least 1, got 0"},
      {[](TrainConfig& c) { c.early_stop_patience = -3; }, "--early-stop-patience must be at least 1, got -3"},
      {[](TrainConfig& c) { c.early_stop_patience = int64_t{1} << 40; },
       "--early-stop-patience must be at most 1000000"},
      {[](TrainConfig& c) { c.early_stop_patience = 3, c.min_delta = -0.1; },
       "--min-delta must not be negative, got -0.1"},
      {[](TrainConfig& c) { c.save_best = "b.h5", c.min_delta = std::nan(""); },
       "--min-delta must be a finite number, got nan"},
      {[](TrainConfig& c) { c.monitor = Monitor::val_accuracy; },
       "--monitor val_accuracy needs --early-stop-patience or --save-best (what watches it)"},
      {[](TrainConfig& c) { c.min_delta = 0.01; }, "--min-delta needs --early-stop-patience or --save-best"},
      {[](TrainConfig& c) { c.optimizer.l1 = -0.01f; }, "--l1 must not be negative, got -0.01"},
      {[](TrainConfig& c) { c.optimizer.l1 = INFINITY; }, "--l1 must be a finite number, got inf"},
      {[](TrainConfig& c) { c.label_smoothing = 1.0f; }, "--label-smoothing must be in [0, 1), got 1"},
      {[](TrainConfig& c) { c.label_smoothing = -0.1f; }, "--label-smoothing must be in [0, 1), got -0.1"},
      {[](TrainConfig& c) { c.label_smoothing = std::nanf(""); }, "--label-smoothing must be in [0, 1), got nan"},
      // Fine-tuning (train/init_from.hpp).
      {[](TrainConfig& c) { c.fine_tune.reset_head = true; },
       "--reset-head needs --init-from (the trained model whose output layer it starts anew)"},
      {[](TrainConfig& c) { c.fine_tune.init_from = "m.h5", c.resume = {ResumeFrom::file, "step-1.h5"}; },
       "--init-from and --resume both give the starting weights: a resumed run continues its checkpoint's"},
      {[](TrainConfig& c) { c.fine_tune.init_from = "m.h5", c.resume = {ResumeFrom::newest, ""}, c.checkpoint_dir = "c"; },
       "--init-from and --resume both give the starting weights"},
  };
  for (const auto& [set, says] : cases) {
    TrainConfig c;
    set(c);
    EXPECT_NE(error_of(c, 1).find(says), std::string::npos) << says << ": got '" << error_of(c, 1) << "'";
  }
}

TEST(Validate, NamesLayoutsTheWorldCannotRun) {
  TrainConfig c;
  c.parallel.pipeline.stages = 2;
  EXPECT_EQ(error_of(c, 4), "");
  EXPECT_NE(error_of(c, 3).find("a world of 3 ranks is not divisible by --pipeline-stages 2"), std::string::npos);
  EXPECT_NE(error_of(c, 1).find("a world of 1 rank is not divisible"), std::string::npos);
  c.parallel.mode = ModeKind::ps;
  EXPECT_NE(error_of(c, 4).find("--mode ps does not combine with --pipeline-stages or --micro-batches"),
            std::string::npos);
  c.parallel.pipeline.stages = 1;
  EXPECT_EQ(error_of(c, 2), "");
  c.parallel.sync_batchnorm = true;
  EXPECT_NE(error_of(c, 2).find("--sync-batchnorm needs --mode sync: parameter-server workers step on their own"),
            std::string::npos);
  c.parallel.sync_batchnorm = false;
  EXPECT_NE(error_of(c, 1).find("--ps-servers 1 leaves no worker among 1 rank"), std::string::npos);
  c.parallel.ps.servers = 2;
  EXPECT_NE(error_of(c, 2).find("--ps-servers 2 leaves no worker among 2 ranks"), std::string::npos);
}

// --shard-optimizer: plain data parallel on CPUs, float32 on the wire.
TEST(Validate, ShardOptimizerOnlyWhereItShards) {
  TrainConfig c;
  c.parallel.shard_optimizer = true;
  EXPECT_EQ(error_of(c, 4), "");
  c.device.kind = DeviceKind::automatic;  // a GPU chosen at start is refused by the mode, alike
  EXPECT_EQ(error_of(c, 4), "");
  const std::vector<std::pair<std::function<void(TrainConfig&)>, std::string>> refused = {
      {[](TrainConfig& t) { t.parallel.mode = ModeKind::ps; }, "--shard-optimizer needs --mode sync"},
      {[](TrainConfig& t) { t.parallel.pipeline.stages = 2; }, "--shard-optimizer is for data parallel"},
      {[](TrainConfig& t) { t.parallel.pipeline.micro_batches = 2; }, "--shard-optimizer is for data parallel"},
      {[](TrainConfig& t) { t.compress = HalfFormat::bf16; }, "--shard-optimizer reduce-scatters float32 gradients"},
      {[](TrainConfig& t) { t.device.kind = DeviceKind::cuda; }, "--shard-optimizer runs on the CPU"}};
  for (const auto& [change, says] : refused) {
    TrainConfig bad = c;
    change(bad);
    EXPECT_NE(error_of(bad, 4).find(says), std::string::npos) << says << ": got '" << error_of(bad, 4) << "'";
  }
}

TEST(Validate, StagesAndSplitAgainstTheModel) {
  PipelineConfig p;
  p.stages = 2;
  EXPECT_EQ(stages_error(p, 5), "");
  p.stages = 6;
  EXPECT_NE(stages_error(p, 5).find("--pipeline-stages 6 is more stages than the model's 5 layers"), std::string::npos);
  p.stages = 2;
  p.split = {2, 3};
  EXPECT_NE(stages_error(p, 5).find("--split names 2 boundaries; 2 stages need 1"), std::string::npos);
  for (int bad : {0, 5}) {
    p.split = {bad};
    EXPECT_NE(stages_error(p, 5).find("bad --split: stage boundaries must increase from 1 to 4"), std::string::npos);
  }
  p.split = {2};
  EXPECT_EQ(stages_error(p, 5), "");
}

TEST(Validate, EvaluationSettings) {
  EvalConfig c;
  EXPECT_NO_THROW(validate(c));
  c.batch = 0;
  EXPECT_THROW(validate(c), Error);
  c.batch = 1;
  c.threads = 0;
  EXPECT_THROW(validate(c), Error);
  c.threads = 1;
  c.data.prefetch = -1;
  EXPECT_THROW(validate(c), Error);
}

// predict's settings: eval's rules for the forward passes, and its own --prefetch.
TEST(Validate, PredictionSettings) {
  auto error_of = [](void (*change)(PredictConfig&)) {
    PredictConfig c;
    change(c);
    try {
      validate(c);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error_of([](PredictConfig&) {}), "");
  EXPECT_EQ(error_of([](PredictConfig& c) { c.batch = 0; }), "--batch must be at least 1");
  EXPECT_EQ(error_of([](PredictConfig& c) { c.batch = int64_t{1} << 30; }),
            "--batch must be at most 16777216, got 1073741824");
  EXPECT_EQ(error_of([](PredictConfig& c) { c.threads = 0; }), "--threads must be at least 1");
  EXPECT_EQ(error_of([](PredictConfig& c) { c.prefetch = -1; }), "--prefetch must not be negative, got -1");
  EXPECT_EQ(error_of([](PredictConfig& c) { c.device.gpu = -2; }),
            "--gpu must be a GPU index, or -1 for the node-local rank's, got -2");
}

// --data synthetic:... (data/synthetic.hpp): its numbers' ranges, and the flags about shards beside it.
TEST(Validate, NamesEachBrokenRuleOfSyntheticData) {
  TrainConfig good;
  good.data.synthetic = SyntheticData{{3, 224, 224}, 1000};
  EXPECT_EQ(error_of(good, 1), "");
  good.data.synthetic = SyntheticData{{4, 4096, 4096}, int64_t{1} << 24, int64_t{1} << 27};  // every limit
  EXPECT_EQ(error_of(good, 1), "");
  const std::pair<void (*)(TrainConfig&), const char*> cases[] = {
      {[](TrainConfig& c) { c.data.synthetic->sample = {}; }, "a sample has 1 to 3 dimensions"},
      {[](TrainConfig& c) { c.data.synthetic->sample = {1, 3, 8, 8}; },
       "--data 'synthetic:1x3x8x8:10': a sample has 1 to 3 dimensions ([features] or [channels, height, width]), got 4"},
      {[](TrainConfig& c) { c.data.synthetic->sample = {3, 0, 224}; },
       "--data 'synthetic:3x0x224:10': dimension 2 of the sample shape must be at least 1, got 0"},
      {[](TrainConfig& c) { c.data.synthetic->sample = {-3}; }, "dimension 1 of the sample shape must be at least 1, got -3"},
      {[](TrainConfig& c) { c.data.synthetic->sample = {4, 4096, 4097}; },
       "a sample of more than 67108864 values (256 MiB of float32) is too large to make"},
      // A product beyond int64 (2^24 * 2^62): refused before it is computed.
      {[](TrainConfig& c) { c.data.synthetic->sample = {4096, 4096, int64_t{1} << 62}; }, "is too large to make"},
      {[](TrainConfig& c) { c.data.synthetic->classes = 1; }, "synthetic data needs at least 2 classes, got 1"},
      {[](TrainConfig& c) { c.data.synthetic->classes = -4; }, "needs at least 2 classes, got -4"},
      {[](TrainConfig& c) { c.data.synthetic->classes = (int64_t{1} << 24) + 1; }, "at most 16777216 classes, got 16777217"},
      {[](TrainConfig& c) { c.data.synthetic->samples = 0; }, "--data 'synthetic:784:10:0': an epoch needs at least 1 sample, got 0"},
      {[](TrainConfig& c) { c.data.synthetic->samples = (int64_t{1} << 27) + 1; },
       "at most 134217728 samples an epoch (its order is held in memory), got 134217729"},
      {[](TrainConfig& c) { c.data.train = "t.h5"; },
       "--train and --data synthetic:784:10 both give the training data: give one of them"},
      {[](TrainConfig& c) { c.data.stage_to = "/tmp/stage"; },
       "--stage-to: synthetic data is made in memory on every rank; it has no shards to stage"},
      {[](TrainConfig& c) { c.data.window_shards = 2; }, "--shuffle-window counts shards, and synthetic data has none"},
  };
  for (const auto& [set, says] : cases) {
    TrainConfig c;
    c.data.synthetic = SyntheticData{{784}, 10};
    set(c);
    EXPECT_NE(error_of(c, 1).find(says), std::string::npos) << says << ": got '" << error_of(c, 1) << "'";
  }
  // Beside synthetic data the other splits may be shards; eval's split is the one synthetic data makes.
  TrainConfig with_val = good;
  with_val.data.val = "v.h5";
  EXPECT_EQ(error_of(with_val, 1), "");
  EvalConfig e;
  e.data.synthetic = SyntheticData{{784}, 10};
  e.data.test = "t.h5";
  EXPECT_THROW(validate(e), Error);
  e.split = Split::val;
  EXPECT_NO_THROW(validate(e));
}

// The rules that need the data: what it is for, and whether it has a validation split to watch.
TEST(Validate, EarlyStoppingAndLabelSmoothingAgainstTheData) {
  auto error = [](const TrainConfig& c, bool classification, bool validation) {
    try {
      validate_for_data(c, classification, validation);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  TrainConfig c;
  EXPECT_EQ(error(c, false, false), "");
  c.label_smoothing = 0.1f;
  EXPECT_EQ(error(c, true, false), "");
  EXPECT_EQ(error(c, false, true),
            "--label-smoothing is for classification (it smooths class labels); this data is for regression");
  c.label_smoothing = 0.0f;
  c.early_stop_patience = 3;
  EXPECT_EQ(error(c, true, true), "");
  EXPECT_EQ(error(c, true, false), "--early-stop-patience needs a validation split to monitor: --val FILES, or "
                                   "val-*.h5 shards in --data");
  c.early_stop_patience.reset();
  c.save_best = "best.h5";
  EXPECT_EQ(error(c, false, false).rfind("--save-best needs a validation split to monitor", 0), 0u);
  c.monitor = Monitor::val_mae;
  EXPECT_EQ(error(c, false, true), "");
  EXPECT_EQ(error(c, true, true), "--monitor val_mae: this data is for classification, whose validation metrics are "
                                  "val_loss and val_accuracy");
  c.monitor = Monitor::val_accuracy;
  EXPECT_EQ(error(c, false, true), "--monitor val_accuracy: this data is for regression, whose validation metrics "
                                   "are val_loss and val_mae");
}

// The rules let through what they should: the edges of each range.
TEST(Validate, TheEdgesOfEachRangePass) {
  TrainConfig c;
  c.optimizer.momentum = 0.0f;
  c.optimizer.beta1 = 0.0f;
  c.optimizer.weight_decay = 0.0f;
  c.lr_gamma = 1.0f;
  c.data.prefetch = 0;
  c.straggler_rank = 3;
  c.early_stop_patience = 1;
  c.monitor = Monitor::val_mae;
  c.min_delta = 0.0;
  c.label_smoothing = 0.0f;
  c.optimizer.l1 = 0.0f;
  EXPECT_EQ(error_of(c, 4), "");
}

}  // namespace
}  // namespace ringtrain
