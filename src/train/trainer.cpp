#include "ringtrain/train/trainer.hpp"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <cmath>
#include <cstdio>
#include <ostream>

#include "ringtrain/error.hpp"
#include "ringtrain/nn/lr_schedule.hpp"
#include "ringtrain/tensor/blas.hpp"
#include "ringtrain/train/model_file.hpp"

namespace ringtrain {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string format_score(const std::string& prefix, const Score& s, const std::string& metric) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "%sloss %.4f  %s%s %.4f", prefix.c_str(), s.loss(), prefix.c_str(), metric.c_str(),
                s.metric());
  return buf;
}

ShardSet open_train_set(const DataSources& data) {
  const std::string source = data.source("train");
  if (source.empty())
    throw Error(data.dir.empty() ? "no training data: give --data DIR or --train FILES"
                                 : "no training shards (train-*.h5) in '" + data.dir + "'");
  return ShardSet::open(source);
}

std::unique_ptr<ShardSet> open_optional(const DataSources& data, const std::string& split, const ShardMeta& like) {
  const std::string source = data.source(split);
  if (source.empty()) return nullptr;
  auto set = std::make_unique<ShardSet>(ShardSet::open(source));
  check_compatible(like, set->meta());
  return set;
}

// Fails now rather than after hours of training.
void check_writable(const std::string& path, const std::string& what) {
  const std::filesystem::path dir = std::filesystem::absolute(path).parent_path();
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw Error("cannot write " + what + " to '" + path + "': directory '" + dir.string() + "' does not exist");
  if (::access(dir.c_str(), W_OK) != 0)
    throw Error("cannot write " + what + " to '" + path + "': directory '" + dir.string() + "' is not writable");
}

}  // namespace

Score evaluate(Model& model, Loss& loss, BatchLoader& loader) {
  Score total;
  Batch batch;
  loader.start_epoch(0);
  while (loader.next(batch)) total += loss.forward(model.forward(batch.x, Mode::eval), batch.y);
  return total;
}

Trainer::Trainer(const TrainConfig& config) : config_(config), train_set_(open_train_set(config.data)) {
  if (config_.batch < 1) throw Error("--batch must be at least 1");
  if (config_.epochs < 1) throw Error("--epochs must be at least 1");
  if (config_.threads < 1) throw Error("--threads must be at least 1");
  if (!config_.save_model.empty()) check_writable(config_.save_model, "the model");
  val_set_ = open_optional(config_.data, "val", train_set_.meta());
  test_set_ = open_optional(config_.data, "test", train_set_.meta());
  const ShardMeta& meta = train_set_.meta();
  model_ = std::make_unique<Model>(config_.model, meta.sample_shape, meta.outputs(), derive_seed(config_.seed, 0));
  loss_ = make_loss(meta.classification());
  optimizer_ = make_optimizer(config_.optimizer);
}

LrSchedule Trainer::schedule(int64_t steps_per_epoch) const {
  LrSchedule s;
  s.kind = config_.lr_schedule;
  s.base_lr = config_.lr;
  s.warmup_steps = std::llround(config_.warmup_epochs * static_cast<double>(steps_per_epoch));
  s.total_steps = config_.epochs * steps_per_epoch;
  s.decay_every = std::max<int64_t>(1, std::llround(config_.lr_step_epochs * static_cast<double>(steps_per_epoch)));
  s.gamma = config_.lr_gamma;
  s.min_lr = config_.lr_min;
  validate(s);
  return s;
}

std::unique_ptr<BatchLoader> Trainer::eval_loader(const ShardSet& split) const {
  LoaderConfig c;
  c.batch = std::max<int64_t>(config_.batch, 256);
  c.shuffle = false;
  c.drop_last = false;
  c.window_shards = config_.data.window_shards;
  c.prefetch = config_.data.prefetch;
  return std::make_unique<BatchLoader>(split, c);
}

TrainResult Trainer::run(std::ostream& log) {
  set_compute_threads(config_.threads);
  LoaderConfig lc;
  lc.batch = config_.batch;
  lc.seed = config_.seed;
  lc.window_shards = config_.data.window_shards;
  lc.prefetch = config_.data.prefetch;
  BatchLoader train_loader(train_set_, lc);
  const int64_t steps_per_epoch = train_loader.batches_per_epoch();
  if (steps_per_epoch == 0)
    throw Error("the training split has " + std::to_string(train_set_.samples()) +
                " samples, fewer than one batch of " + std::to_string(config_.batch));
  const LrSchedule lr = schedule(steps_per_epoch);
  auto val_loader = val_set_ ? eval_loader(*val_set_) : nullptr;
  const std::string metric = loss_->metric_name();
  MetricsLog metrics(config_.metrics_csv, metric);

  log << "model " << model_->spec() << "\n  input " << shape_str(model_->input_shape()) << ", "
      << model_->parameter_count() << " parameters; " << train_set_.samples() << " training samples in "
      << train_set_.shards().size() << " shards, " << steps_per_epoch << " steps per epoch, batch " << config_.batch
      << ", " << config_.threads << " threads" << std::endl;

  TrainResult result;
  const std::vector<Param*> params = model_->params();
  Batch batch;
  int64_t step = 0;
  const Clock::time_point start = Clock::now();
  for (int64_t epoch = 0; epoch < config_.epochs; ++epoch) {
    EpochRecord rec;
    rec.epoch = epoch + 1;
    const Clock::time_point epoch_start = Clock::now();
    train_loader.start_epoch(epoch);
    while (train_loader.next(batch)) {
      rec.lr = lr.at(step);
      model_->zero_grad();
      const Tensor& out = model_->forward(batch.x, Mode::train);
      rec.train += loss_->forward(out, batch.y);
      model_->backward(loss_->backward(1.0f));
      optimizer_->step(params, static_cast<float>(rec.lr));
      ++step;
      if (config_.log_every > 0 && step % config_.log_every == 0)
        log << "  step " << step << "  " << format_score("", rec.train, metric) << std::endl;
      if (config_.max_steps > 0 && step >= config_.max_steps) break;
    }
    const double train_seconds = seconds_since(epoch_start);
    rec.images_per_s = static_cast<double>(rec.train.samples) / train_seconds;
    if (val_loader) rec.val = evaluate(*model_, *loss_, *val_loader);
    rec.step = step;
    rec.seconds = seconds_since(start);
    metrics.write(rec);
    char tail[96];
    std::snprintf(tail, sizeof tail, "  %.0f img/s  %.1f s", rec.images_per_s, rec.seconds);
    log << "epoch " << rec.epoch << "/" << config_.epochs << "  " << format_score("", rec.train, metric)
        << (rec.val.samples ? "  " + format_score("val_", rec.val, metric) : "") << tail << std::endl;
    result.epochs.push_back(rec);
    if (config_.max_steps > 0 && step >= config_.max_steps) break;
  }
  result.steps = step;
  if (test_set_) {
    auto test_loader = eval_loader(*test_set_);
    result.test = evaluate(*model_, *loss_, *test_loader);
    log << "test  " << format_score("test_", result.test, metric) << "  (" << result.test.samples << " samples)"
        << std::endl;
  }
  if (!config_.save_model.empty()) {
    save_model(config_.save_model, *model_, train_set_.meta().classification());
    log << "saved model to " << config_.save_model << std::endl;
  }
  return result;
}

}  // namespace ringtrain
