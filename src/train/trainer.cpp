#include "ringtrain/train/trainer.hpp"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <thread>

#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/comm/timeline.hpp"
#include "ringtrain/data/device_batches.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/nn/lr_schedule.hpp"
#include "ringtrain/parallel/parameter_server.hpp"
#include "ringtrain/parallel/pipeline_parallel.hpp"
#include "ringtrain/tensor/blas.hpp"
#include "ringtrain/train/device_choice.hpp"
#include "ringtrain/train/mode_report.hpp"
#include "ringtrain/stop_request.hpp"
#include "ringtrain/train/checkpoint.hpp"
#include "ringtrain/train/model_file.hpp"
#include "ringtrain/train/staging.hpp"

namespace ringtrain {

namespace {

using Clock = Timeline::Clock;

std::string format_score(const std::string& prefix, const Score& s, const std::string& metric) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "%sloss %.4f  %s%s %.4f", prefix.c_str(), s.loss(), prefix.c_str(), metric.c_str(),
                s.metric());
  return buf;
}

// This rank's training batches, pass after pass over its share of the data (pass k shuffled by seed and k).
class BatchStream {
 public:
  // Starts at batch `batch` of pass `pass` (a resumed run's place).
  BatchStream(DeviceBatches& batches, int64_t pass, int64_t batch) : batches_(batches), pass_(pass), batch_(batch) {}
  // The next batch of the current pass, or null at its end; the call after that starts the next pass.
  const Batch* next() {
    if (!started_) batches_.start_epoch(pass_, batch_), started_ = true;
    const Batch* batch = batches_.next();
    if (batch) {
      ++batch_;
    } else {
      started_ = false, ++pass_, batch_ = 0;
    }
    return batch;
  }
  int64_t pass() const { return pass_; }
  int64_t batch() const { return batch_; }  // within the pass: the one next() gives next

 private:
  DeviceBatches& batches_;
  int64_t pass_ = 0, batch_ = 0;
  bool started_ = false;
};

// Per-layer forward and backward spans on the training row of the timeline.
class LayerSpans final : public LayerObserver {
 public:
  LayerSpans(Model& model, Timeline* timeline) : model_(model), timeline_(timeline) {
    if (!timeline_) return;
    for (size_t i = 0; i < model.size(); ++i) names_.push_back(model.layer_name(i));
    model_.add_observer(this);
  }
  ~LayerSpans() override {
    if (timeline_) model_.remove_observer(this);
  }
  void forward_begin(size_t) override { begin_ = Clock::now(); }
  void forward_end(size_t i) override { timeline_->span(Timeline::training, "forward " + names_[i], begin_, Clock::now()); }
  void backward_begin(size_t) override { begin_ = Clock::now(); }
  void backward_end(size_t i) override { timeline_->span(Timeline::training, "backward " + names_[i], begin_, Clock::now()); }

 private:
  Model& model_;
  Timeline* timeline_;
  std::vector<std::string> names_;
  Clock::time_point begin_;
};

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

// Creates the directory if need be; fails now, not at the first checkpoint hours later.
void prepare_checkpoint_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("cannot create the checkpoint directory '" + dir + "': " + ec.message());
  if (::access(dir.c_str(), W_OK) != 0)
    throw Error("cannot write checkpoints to '" + dir + "': the directory is not writable (" + std::strerror(errno) + ")");
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

Trainer::Trainer(const TrainConfig& config, Communicator& world) : config_(config), world_(world) {
  config_.data.stage_to = agree_stage_dir(config_.data.stage_to, world_);
  if (!config_.data.stage_to.empty()) config_.data = stage_data(config_.data, world_, staging_);
  std::string failure;
  try {
    open();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  raise_if_any_failed(world_, failure);
  check_same_on_all_ranks(world_, settings());
  if (!config_.checkpoint_dir.empty()) checkpoints_.emplace(config_.checkpoint_dir, config_.keep_checkpoints);
}

void Trainer::open() {
  train_set_ = std::make_unique<ShardSet>(open_train_set(config_.data));
  if (config_.batch < 1) throw Error("--batch must be at least 1");
  if (config_.epochs < 1) throw Error("--epochs must be at least 1");
  if (config_.threads < 1) throw Error("--threads must be at least 1");
  if (config_.lr_scaling != "none" && config_.lr_scaling != "linear")
    throw Error("unknown --lr-scaling '" + config_.lr_scaling + "' (expected none or linear)");
  if (world_.rank() == 0) {
    if (!config_.save_model.empty()) check_writable(config_.save_model, "the model");
    if (!config_.timeline.empty()) check_writable(config_.timeline, "the timeline");
    if (!config_.metrics_csv.empty()) check_writable(config_.metrics_csv, "the metrics");
    if (!config_.checkpoint_dir.empty()) prepare_checkpoint_dir(config_.checkpoint_dir);
  }
  val_set_ = open_optional(config_.data, "val", train_set_->meta());
  test_set_ = open_optional(config_.data, "test", train_set_->meta());
  const ShardMeta& meta = train_set_->meta();
  // Built whole on the host from the seed on every rank; the parallel mode moves what this rank runs to the
  // device, so every device and every pipeline split starts from the same weights.
  model_ = std::make_unique<Model>(config_.model, meta.sample_shape, meta.outputs(), derive_seed(config_.seed, 0));
  const PipelineConfig& pipeline = config_.parallel.pipeline;
  check_pipeline(pipeline, world_.size(), model_->size());
  if (config_.batch % pipeline.micro_batches != 0)
    throw Error("--batch " + std::to_string(config_.batch) + " is not divisible by --micro-batches " +
                std::to_string(pipeline.micro_batches));
  const bool serving = config_.parallel.mode == "ps" && world_.rank() >= world_.size() - config_.parallel.ps.servers;
  if (config_.parallel.mode == "ps") check_parameter_servers(config_.parallel, world_.size());
  device_ = serving ? Device::cpu : start_device(config_.device);  // parameter servers work on the host
  loss_ = make_loss(meta.classification(), device_);
  optimizer_ = make_optimizer(config_.optimizer, device_);
}

// What every rank must agree on: a rank with another model, batch or learning rate would train something
// else, and one with another fusion size or allreduce would hang in mismatched collectives.
std::vector<std::pair<std::string, std::string>> Trainer::settings() const {
  const OptimizerConfig& o = config_.optimizer;
  auto num = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.7g", v);  // float precision: 0.05, not 0.0500000007
    return std::string(buf);
  };
  const ShardMeta& meta = train_set_->meta();
  const PipelineConfig& pipe = config_.parallel.pipeline;
  std::string split;
  for (int first : pipe.split) split += (split.empty() ? "" : ",") + std::to_string(first);
  return {{"--model", model_->spec()},
          {"the training data", std::to_string(train_set_->samples()) + " samples of " + shape_str(meta.sample_shape) +
                                    " in " + std::to_string(train_set_->shards().size()) + " shards"},
          {"--batch", std::to_string(config_.batch)},
          {"--epochs", std::to_string(config_.epochs)},
          {"--steps", std::to_string(config_.max_steps)},
          {"--optimizer", name_of(o.kind)},
          {"--lr", num(config_.lr)},
          {"--momentum", num(o.momentum)},
          {"--nesterov", o.nesterov ? "true" : "false"},
          {"--weight-decay", num(o.weight_decay)},
          {"--beta1", num(o.beta1)},
          {"--beta2", num(o.beta2)},
          {"--eps", num(o.eps)},
          {"--alpha", num(o.alpha)},
          {"--lr-schedule", config_.lr_schedule},
          {"--warmup-epochs", num(config_.warmup_epochs)},
          {"--lr-step-epochs", num(config_.lr_step_epochs)},
          {"--lr-gamma", num(config_.lr_gamma)},
          {"--lr-min", num(config_.lr_min)},
          {"--lr-scaling", config_.lr_scaling},
          {"--seed", std::to_string(config_.seed)},
          {"--shuffle-window", std::to_string(config_.data.window_shards)},
          {"--mode", config_.parallel.mode},
          {"--pipeline-stages", std::to_string(pipe.stages)},
          {"--micro-batches", std::to_string(pipe.micro_batches)},
          {"--schedule", pipe.schedule},
          {"--split", split},
          {"--ps-servers", std::to_string(config_.parallel.ps.servers)},
          {"--staleness", std::to_string(config_.parallel.ps.staleness)},
          {"--device", config_.parallel.mode == "ps" ? config_.device.kind : device_name(device_)},
          {"--precision", precision_name(config_.device.precision)},
          {"--allreduce", gradient_backend()},
          {"--fusion-mb", num(static_cast<double>(config_.parallel.engine.fusion_bytes) / (1 << 20))}};
}

Settings Trainer::checkpoint_settings() const {
  Settings s = settings();
  s.emplace_back("--ranks", std::to_string(world_.size()));
  return s;
}

bool Trainer::load_checkpoint(std::ostream& log) {
  std::string path = config_.resume;
  if (path == "auto") {
    if (world_.rank() == 0) path = checkpoints_->newest_valid(log);
    path = allgather_strings(world_, path)[0];  // every rank reads the one rank 0 chose
    if (path.empty()) {
      log << "no checkpoint in " << checkpoints_->dir() << " to resume from: starting afresh" << std::endl;
      return false;
    }
  }
  std::string failure;
  try {
    resumed_ = read_checkpoint(path, *model_, optimizer_->state_names());
    const std::string mismatch = checkpoint_mismatch(resumed_->settings, checkpoint_settings());
    if (!mismatch.empty()) throw Error("'" + path + "' is another run's: " + mismatch);
  } catch (const std::exception& e) {
    failure = std::string("cannot resume: ") + e.what();
  }
  raise_if_any_failed(world_, failure);
  log << "resuming from " << path << " (step " << resumed_->progress.step << ", " << resumed_->progress.epoch
      << " epochs done)" << std::endl;
  return true;
}

void Trainer::save_checkpoint(ParallelMode& mode, const TrainProgress& progress, std::ostream& log) {
  const Clock::time_point start = Clock::now();
  // The whole model's optimizer state is rank 0's to hold; the others need only its names.
  OptimizerState optimizer{0, optimizer_->state_names(), {}};
  if (world_.rank() == 0) optimizer = zero_optimizer_state(optimizer.names, model_->params());
  mode.gather_state(optimizer);
  if (world_.rank() != 0) return;
  const std::string path = checkpoints_->path(progress.step);
  write_checkpoint(path, *model_, train_set_->meta().classification(), optimizer, progress, checkpoint_settings());
  checkpoints_->prune();
  char took[64];
  std::snprintf(took, sizeof took, " (%.1f MB, %.0f ms)", static_cast<double>(std::filesystem::file_size(path)) / 1e6,
                1e3 * seconds_since(start));
  log << "  checkpoint " << path << took << std::endl;
}

std::string Trainer::gradient_backend() const {
  if (config_.parallel.mode == "ps") return "parameter servers";
  return device_ == Device::cuda ? "nccl" : world_.backend();
}

std::string Trainer::device_description() const {
  if (device_ == Device::cpu) return std::to_string(config_.threads) + " threads";
  return "GPU " + std::to_string(cuda_gpu()) + " (" + precision_name(config_.device.precision) + ")";
}

LrSchedule Trainer::schedule(int64_t steps_per_epoch, int replicas) const {
  LrSchedule s;
  s.kind = config_.lr_schedule;
  s.base_lr = config_.lr;
  if (config_.lr_scaling == "linear") {  // Goyal et al.: k times the batch, k times the rate, reached by warm-up
    s.base_lr = config_.lr * static_cast<float>(replicas);
    s.warmup_from = config_.lr;
  }
  s.warmup_steps = std::llround(config_.warmup_epochs * static_cast<double>(steps_per_epoch));
  s.total_steps = config_.epochs * steps_per_epoch;
  s.decay_every = std::max<int64_t>(1, std::llround(config_.lr_step_epochs * static_cast<double>(steps_per_epoch)));
  s.gamma = config_.lr_gamma;
  s.min_lr = config_.lr_min;
  validate(s);
  return s;
}

std::unique_ptr<BatchLoader> Trainer::eval_loader(const ShardSet& split, DataShare share) const {
  LoaderConfig c;
  c.batch = std::max<int64_t>(config_.batch, 256);
  c.shuffle = false;
  c.drop_last = false;
  c.rank = share.replica;
  c.world = share.replicas;
  c.window_shards = config_.data.window_shards;
  c.prefetch = config_.data.prefetch;
  return std::make_unique<BatchLoader>(split, c);
}

TrainResult Trainer::run(std::ostream& log) {
  set_compute_threads(config_.threads);
  const DataShare share = data_share(config_.parallel, world_.rank(), world_.size());
  const int ranks = world_.size(), replicas = share.replicas;
  LoaderConfig lc;
  lc.batch = config_.batch;
  lc.seed = config_.seed;
  lc.rank = share.replica;
  lc.world = replicas;
  lc.window_shards = config_.data.window_shards;
  lc.prefetch = config_.data.prefetch;
  BatchLoader train_loader(*train_set_, lc);
  DeviceBatches train_batches(train_loader, device_);
  const int64_t steps_per_epoch = train_loader.batches_per_epoch();  // the same on every rank (drop_last)
  if (steps_per_epoch == 0)
    throw CollectiveError("the training split has " + std::to_string(train_set_->samples()) +
                          " samples, fewer than one batch of " + std::to_string(config_.batch * replicas) +
                          (replicas > 1 ? " (" + std::to_string(replicas) + " replicas x --batch " +
                                              std::to_string(config_.batch) + ")"
                                        : std::string()));
  // A checkpoint goes into the host model before the mode moves it to the device.
  TrainProgress at;
  ResumePoint resume;
  if (!config_.resume.empty() && load_checkpoint(log)) {
    at = resumed_->progress;
    resume = {&resumed_->optimizer, at.step, at.epoch};
  }
  std::unique_ptr<Timeline> timeline;
  if (!config_.timeline.empty()) {
    world_.barrier();  // one time origin for every rank
    timeline = std::make_unique<Timeline>();
  }
  LayerSpans layer_spans(*model_, timeline.get());
  const std::unique_ptr<ParallelMode> mode = make_parallel_mode(
      config_.parallel, world_,
      {*model_, device_, *loss_, *optimizer_, config_.optimizer, steps_per_epoch, timeline.get(), std::cerr, resume});
  resumed_.reset();  // the mode has taken its part of the optimizer state
  auto* pipeline = dynamic_cast<PipelineParallel*>(mode.get());
  auto* servers = dynamic_cast<ParameterServerMode*>(mode.get());
  const LrSchedule lr = schedule(steps_per_epoch, replicas);
  auto val_loader = val_set_ ? eval_loader(*val_set_, share) : nullptr;
  const std::string metric = loss_->metric_name();
  MetricsLog metrics(world_.rank() == 0 ? config_.metrics_csv : "", metric,
                     servers ? ps_metric_columns() : std::vector<std::string>{}, at.step > 0);

  log << "model " << model_->spec() << "\n  input " << shape_str(model_->input_shape()) << ", "
      << model_->parameter_count() << " parameters; " << train_set_->samples() << " training samples in "
      << train_set_->shards().size() << " shards, " << steps_per_epoch << " steps per epoch, batch " << config_.batch
      << (replicas > 1 && !servers ? " x " + std::to_string(replicas) + (replicas == ranks ? " ranks (" : " replicas (") +
                                         gradient_backend() + " allreduce)"
                                   : std::string())
      << ", " << device_description() << std::endl;
  if (staging_.nodes > 0)
    log << "  staged " << staging_.shards << " shards to " << staging_.dir << " on " << staging_.nodes << " node"
        << (staging_.nodes > 1 ? "s: " : ": ") << staging_.copied << " copied (" << staging_.bytes_copied / 1000000
        << " MB), " << staging_.kept << " already there" << (staging_.replaced ? ", " + std::to_string(staging_.replaced) +
           " of the copies replaced a staged file that no longer matched" : std::string())
        << std::endl;
  if (pipeline) log << pipeline_description(*pipeline, config_.parallel.pipeline, *model_);
  if (servers) log << ps_description(config_.parallel.ps, replicas, config_.batch);

  TrainResult result;
  int64_t step = at.step;
  BatchStream stream(train_batches, at.pass, at.pass_batch);
  auto progress = [&](int64_t epochs_done) {
    if (stream.batch() == steps_per_epoch) return TrainProgress{step, epochs_done, stream.pass() + 1, 0};  // a pass done
    return TrainProgress{step, epochs_done, stream.pass(), stream.batch()};
  };
  const Clock::time_point start = Clock::now();
  bool stopping = false;
  for (int64_t epoch = at.epoch; epoch < config_.epochs && !stopping; ++epoch) {
    EpochRecord rec;
    rec.epoch = epoch + 1;
    const Clock::time_point epoch_start = Clock::now();
    Score mine;
    bool out_of_steps = false, checkpoint_due = false;
    // A resumed run picks the epoch up where the checkpoint left it.
    int64_t epoch_steps = 0;
    if (epoch == at.epoch) epoch_steps = mode->epoch_ends_with_data() ? at.pass_batch : at.step - at.epoch * steps_per_epoch;
    if (!mode->reads_data()) mode->serve_epoch();
    else {
      // Every rank stops at the same step boundary when any was asked to (SIGTERM).
      while (!(stopping = mode->agree_to_stop(stop_requested())) && mode->begin_step()) {
        const Batch* batch = stream.next();
        if (!batch) {  // this rank's pass over its data is done
          if (mode->epoch_ends_with_data()) break;
          batch = stream.next();  // the epoch goes on into the next pass
        }
        rec.lr = lr.at(step);
        if (world_.rank() == config_.straggler_rank)  // a slow worker, for studies
          std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(config_.straggler_ms));
        mode->train_step(*batch, static_cast<float>(rec.lr));
        ++step, ++epoch_steps;
        if (config_.log_every > 0 && step % config_.log_every == 0) {
          mine += loss_->take_score();  // on a GPU: waits for the step
          // Ranks out of step cannot sum at every step: then rank 0 reports its own running loss.
          log << "  step " << step << "  "
              << format_score("", mode->steps_in_lockstep() ? mode->sum_over_ranks(mine) : mine, metric) << std::endl;
        }
        if (config_.max_steps > 0 && step >= config_.max_steps) {
          out_of_steps = true;
          break;
        }
        // One due on an epoch's last step waits for the epoch's end, so that it records the epoch as done.
        if (checkpoints_ && config_.checkpoint_every > 0 && step % config_.checkpoint_every == 0) {
          if (epoch_steps < steps_per_epoch) save_checkpoint(*mode, progress(epoch), log);
          else checkpoint_due = true;
        }
      }
      // Parameter servers may have relayed another rank's stop instead of a step (lockstep modes see a stop
      // asked for now at the next step boundary, in the next epoch).
      if (!mode->steps_in_lockstep()) stopping = mode->agree_to_stop(stop_requested());
      if (!stopping) mode->end_epoch();
    }
    if (!mode->reads_data()) stopping = mode->agree_to_stop(stop_requested());  // a server saw the halt
    if (stopping) break;
    mine += loss_->take_score();
    rec.train = mode->sum_over_ranks(mine);
    const double train_seconds = seconds_since(epoch_start);
    rec.images_per_s = static_cast<double>(rec.train.samples) / train_seconds;
    mode->sync_buffers();
    if (val_loader) rec.val = mode->sum_over_ranks(mode->evaluate(*val_loader));
    rec.step = step;
    rec.seconds = seconds_since(start);
    std::string report;
    if (pipeline && device_ == Device::cpu) report = pipeline_utilisation(*pipeline, config_.parallel.pipeline, world_);
    if (servers) report = ps_report(servers->epoch_report(), config_.parallel.ps, rec.extra);
    metrics.write(rec);
    char tail[96];
    std::snprintf(tail, sizeof tail, "  %.0f img/s  %.1f s", rec.images_per_s, rec.seconds);
    log << "epoch " << rec.epoch << "/" << config_.epochs << "  " << format_score("", rec.train, metric)
        << (rec.val.samples ? "  " + format_score("val_", rec.val, metric) : "") << tail << std::endl
        << report;
    if (mode->skipped_steps() > 0)
      log << "  " << mode->skipped_steps() << " steps skipped so far for non-finite gradients (--skip-nonfinite)"
          << std::endl;
    result.epochs.push_back(rec);
    if (checkpoint_due) save_checkpoint(*mode, progress(epoch + 1), log);
    // Ranks out of step may stop at different epochs: any rank's stop is everyone's.
    if (!mode->steps_in_lockstep()) out_of_steps = agree_any(world_, out_of_steps);
    // An epoch cut short by --steps is not done: a resumed run with more steps finishes it.
    at.epoch = out_of_steps && epoch_steps < steps_per_epoch ? epoch : epoch + 1;
    if (out_of_steps) break;
  }
  result.steps = step;
  if (stopping) {  // the job ends here: a checkpoint, and none of the collectives of a finished run
    result.stopped_early = true;
    if (checkpoints_) save_checkpoint(*mode, progress(at.epoch), log);
    log << "stopped by " << (stop_requested() ? stop_reason() : "a signal to another rank") << " after step " << step
        << (checkpoints_ ? "; --resume auto continues from the checkpoint" : "; no --checkpoint-dir, nothing saved")
        << std::endl;
    return result;
  }
  if (checkpoints_) save_checkpoint(*mode, progress(at.epoch), log);
  if (test_set_) {
    auto test_loader = eval_loader(*test_set_, share);
    result.test = mode->sum_over_ranks(mode->evaluate(*test_loader));
    log << "test  " << format_score("test_", result.test, metric) << "  (" << result.test.samples << " samples)"
        << std::endl;
  }
  if (!config_.save_model.empty()) {
    mode->gather_model();
    if (world_.rank() == 0) {
      save_model(config_.save_model, *model_, train_set_->meta().classification());
      log << "saved model to " << config_.save_model << std::endl;
    }
  }
  if (timeline) {
    timeline->write(world_, config_.timeline);
    log << "wrote timeline to " << config_.timeline << std::endl;
  }
  return result;
}

}  // namespace ringtrain
