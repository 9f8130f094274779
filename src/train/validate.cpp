#include "ringtrain/train/validate.hpp"

#include <cmath>
#include <cstdio>

#include "ringtrain/data/synthetic.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"

namespace ringtrain {

namespace {

std::string ranks(int n) { return counted(n, "rank"); }

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.7g", v);
  return buf;
}

void require(bool rule, const std::string& message) {
  if (!rule) throw Error(message);
}

// The numeric rules, each with the value it got. NaN fails every comparison, so each rule also refuses it;
// infinity is refused where a finite number is meant.
void positive(double v, const char* flag) {
  require(v > 0.0 && std::isfinite(v), std::string(flag) + " must be positive, got " + number(v));
}
void not_negative(double v, const char* flag) {
  require(std::isfinite(v), std::string(flag) + " must be a finite number, got " + number(v));
  require(v >= 0.0, std::string(flag) + " must not be negative, got " + number(v));
}
// In [0, 1): a decay or averaging factor, where 1 would keep the first value for ever.
void fraction(double v, const char* flag) {
  require(v >= 0.0 && v < 1.0, std::string(flag) + " must be in [0, 1), got " + number(v));
}
// Upper bounds: beyond them a setting means nothing useful, and its arithmetic (steps from epochs, durations
// from seconds, buffer sizes) would overflow.
void at_most(double v, double limit, const char* flag) {
  require(v <= limit, std::string(flag) + " must be at most " + number(limit) + ", got " + number(v));
}
void at_most(int64_t v, int64_t limit, const char* flag) {
  require(v <= limit, std::string(flag) + " must be at most " + std::to_string(limit) + ", got " + std::to_string(v));
}
constexpr int64_t kMaxEpochs = 1000000;
constexpr double kMaxSeconds = 1e6;  // about 11 days: a debugger session, not an overflow
constexpr int64_t kMaxBatch = int64_t{1} << 24;
constexpr int64_t kMaxThreads = 4096;
constexpr int64_t kMaxGeneratedTokens = int64_t{1} << 24;
constexpr float kMaxTemperature = 100.0f;

void validate_threads(int threads) {
  require(threads >= 1, "--threads must be at least 1");
  at_most(int64_t{threads}, kMaxThreads, "--threads");
}

void validate_gpu(int gpu) {
  require(gpu >= -1, "--gpu must be a GPU index, or -1 for the node-local rank's, got " + std::to_string(gpu));
}

void validate_schedule(const TrainConfig& c) {
  require(c.batch >= 1, "--batch must be at least 1");
  at_most(c.batch, kMaxBatch, "--batch");
  require(c.epochs >= 1, "--epochs must be at least 1");
  at_most(c.epochs, kMaxEpochs, "--epochs");
  require(c.max_steps >= 0, "--steps must not be negative, got " + std::to_string(c.max_steps));
  validate_threads(c.threads);
  require(c.log_every >= 0, "--log-every must not be negative, got " + std::to_string(c.log_every));
  if (c.timeline_steps.first > 0) {
    require(!c.timeline.empty(), "--timeline-steps needs --timeline FILE (the trace it limits)");
    require(c.timeline_steps.last >= c.timeline_steps.first,
            "--timeline-steps " + std::to_string(c.timeline_steps.first) + ":" + std::to_string(c.timeline_steps.last) +
                " ends before it begins");
  }
  positive(c.lr, "--lr");
  not_negative(c.warmup_epochs, "--warmup-epochs");
  at_most(c.warmup_epochs, double(kMaxEpochs), "--warmup-epochs");
  positive(c.lr_step_epochs, "--lr-step-epochs");
  at_most(c.lr_step_epochs, double(kMaxEpochs), "--lr-step-epochs");
  require(c.lr_gamma > 0.0f && c.lr_gamma <= 1.0f, "--lr-gamma must be in (0, 1], got " + number(c.lr_gamma));
  not_negative(c.lr_min, "--lr-min");
  require(c.lr_min < c.lr, "--lr-min " + number(c.lr_min) + " must be below --lr " + number(c.lr));
}

// PyTorch's rules (torch.optim), and eps > 0, without which a zero gradient divides 0 by 0.
void validate_optimizer(const OptimizerConfig& o) {
  fraction(o.momentum, "--momentum");
  require(!o.nesterov || o.momentum > 0.0f, "--nesterov needs a --momentum above 0");
  not_negative(o.weight_decay, "--weight-decay");
  not_negative(o.l1, "--l1");
  fraction(o.beta1, "--beta1");
  fraction(o.beta2, "--beta2");
  fraction(o.alpha, "--alpha");
  positive(o.eps, "--eps");
}

// --clip-grad-norm: a norm above 0 (0 is off); NaN fails every comparison, so it is refused too.
void validate_clipping(float max_norm) {
  require(max_norm >= 0.0f && std::isfinite(max_norm),
          "--clip-grad-norm must be a finite norm above 0 (0 = off), got " + number(max_norm));
}

// The sample shape of --data synthetic:...: 1 to 3 dimensions, each at least 1, their product within the
// per-sample limit (checked before multiplying, so that it cannot overflow).
void validate_synthetic_shape(const Shape& sample, const std::string& flag) {
  require(!sample.empty() && sample.size() <= 3, flag + "a sample has 1 to 3 dimensions ([features] or [channels, "
                                                        "height, width]), got " + std::to_string(sample.size()));
  for (size_t d = 0; d < sample.size(); ++d)
    require(sample[d] >= 1, flag + "dimension " + std::to_string(d + 1) +
                                " of the sample shape must be at least 1, got " + std::to_string(sample[d]));
  int64_t values = 1;
  for (int64_t dim : sample) {
    require(dim <= kMaxSyntheticValues / values, flag + "a sample of more than " + std::to_string(kMaxSyntheticValues) +
                                                     " values (256 MiB of float32) is too large to make");
    values *= dim;
  }
}

// Its classes (at least 2, as many as a shard may have) and, when given, its samples an epoch.
void validate_synthetic_counts(const SyntheticData& s, const std::string& flag) {
  require(s.classes >= 2, flag + "synthetic data needs at least 2 classes, got " + std::to_string(s.classes));
  require(s.classes <= kMaxSyntheticClasses, flag + "at most " + std::to_string(kMaxSyntheticClasses) +
                                                 " classes, got " + std::to_string(s.classes));
  if (!s.samples) return;
  require(*s.samples >= 1, flag + "an epoch needs at least 1 sample, got " + std::to_string(*s.samples));
  require(*s.samples <= kMaxSyntheticSamples, flag + "at most " + std::to_string(kMaxSyntheticSamples) +
                                                  " samples an epoch (its order is held in memory), got " +
                                                  std::to_string(*s.samples));
}

// Synthetic tokens: a context of at least one token, within the per-sample limit, and a vocabulary of at least
// 2 ids that float32 holds exactly (as a shard's num_classes allows).
void validate_synthetic_tokens(const SyntheticData& s, const std::string& flag) {
  const int64_t context = s.sample.at(0);
  require(context >= 1, flag + "the context must be at least 1 token, got " + std::to_string(context));
  require(context <= kMaxSyntheticValues, flag + "the context may be at most " + std::to_string(kMaxSyntheticValues) +
                                              " tokens, got " + std::to_string(context));
  require(s.classes >= 2, flag + "the vocabulary must have at least 2 tokens, got " + std::to_string(s.classes));
  require(s.classes <= kMaxSyntheticClasses, flag + "the vocabulary may have at most " +
                                                 std::to_string(kMaxSyntheticClasses) + " tokens, got " +
                                                 std::to_string(s.classes));
}

// Synthetic data (data/synthetic.hpp) replaces the split it makes (`made`), and has no shards for the flags
// about shards to act on.
void validate_synthetic(const DataSources& d, Split made) {
  const SyntheticData& s = *d.synthetic;
  const std::string flag = "--data '" + synthetic_spec(s) + "': ";
  if (s.tokens) {
    validate_synthetic_tokens(s, flag);
  } else {
    validate_synthetic_shape(s.sample, flag);
  }
  validate_synthetic_counts(s, flag);
  const char* what = made == Split::train ? "training" : made == Split::val ? "validation" : "test";
  require(d.explicit_source(made).empty(), "--" + name_of(made) + " and --data " + synthetic_spec(s) +
                                               " both give the " + what + " data: give one of them");
  require(d.stage_to.empty(), "--stage-to: synthetic data is made in memory on every rank; it has no shards to stage");
  require(d.window_shards == 0, "--shuffle-window counts shards, and synthetic data has none (its samples are "
                                "shuffled as one block)");
}

void validate_prefetch(int prefetch) {
  require(prefetch >= 0, "--prefetch must not be negative, got " + std::to_string(prefetch));
  at_most(int64_t{prefetch}, 1024, "--prefetch");  // batches held in memory
}

// `made`: the split that synthetic data would make (train's training split, the split eval scores).
void validate_data(const DataSources& d, Split made) {
  validate_prefetch(d.prefetch);
  require(d.window_shards >= 0, "--shuffle-window must not be negative, got " + std::to_string(d.window_shards));
  if (d.synthetic) validate_synthetic(d, made);
}

void validate_checkpoints(const TrainConfig& c) {
  require(c.checkpoint_every >= 0, "--checkpoint-every must not be negative");
  require(c.keep_checkpoints >= 1, "--keep-checkpoints must be at least 1");
  at_most(int64_t{c.keep_checkpoints}, 1000000, "--keep-checkpoints");
  require(c.checkpoint_every == 0 || !c.checkpoint_dir.empty(),
          "--checkpoint-every needs --checkpoint-dir (where to write them)");
  require(c.resume.kind != ResumeFrom::newest || !c.checkpoint_dir.empty(),
          "--resume auto needs --checkpoint-dir (where to look)");
  not_negative(c.peer_timeout_s, "--peer-timeout-s");
  at_most(c.peer_timeout_s, kMaxSeconds, "--peer-timeout-s");
  // Beats go once a second at most; a timeout far below that takes every busy rank for a dead one.
  require(c.peer_timeout_s == 0.0 || c.peer_timeout_s >= 1.0,
          "--peer-timeout-s must be 0 (no heartbeat) or at least 1, got " + number(c.peer_timeout_s));
}

// Early stopping and --save-best (monitor.hpp): what they watch is checked against the data later
// (validate_for_data).
void validate_early_stop(const TrainConfig& c) {
  if (c.early_stop_patience) {
    require(*c.early_stop_patience >= 1,
            "--early-stop-patience must be at least 1, got " + std::to_string(*c.early_stop_patience));
    at_most(*c.early_stop_patience, kMaxEpochs, "--early-stop-patience");
  }
  not_negative(c.min_delta, "--min-delta");
  const bool watched = c.early_stop_patience || !c.save_best.empty();
  require(watched || c.monitor == Monitor::val_loss,
          "--monitor " + name_of(c.monitor) + " needs --early-stop-patience or --save-best (what watches it)");
  require(watched || c.min_delta == 0.0, "--min-delta needs --early-stop-patience or --save-best (what watches the "
                                         "metric it applies to)");
  fraction(c.label_smoothing, "--label-smoothing");
}

void validate_engine(const EngineConfig& e) {
  require(e.fusion_bytes > 0, "--fusion-mb must be positive");
  positive(e.cycle_ms, "--cycle-ms");
  at_most(e.cycle_ms, 1e4, "--cycle-ms");
  not_negative(e.stall_warn_s, "--stall-warn-s");
  at_most(e.stall_warn_s, kMaxSeconds, "--stall-warn-s");
}

void validate_pipeline(const PipelineConfig& p, int64_t batch, int world) {
  require(p.stages >= 1, "--pipeline-stages must be at least 1, got " + std::to_string(p.stages));
  require(p.micro_batches >= 1, "--micro-batches must be at least 1, got " + std::to_string(p.micro_batches));
  require(world % p.stages == 0, "a world of " + ranks(world) + " is not divisible by --pipeline-stages " +
                                     std::to_string(p.stages) + " (ranks = data-parallel replicas x stages)");
  require(batch % p.micro_batches == 0, "--batch " + std::to_string(batch) + " is not divisible by --micro-batches " +
                                            std::to_string(p.micro_batches));
}

void validate_servers(const ParallelConfig& c, int world) {
  const PsConfig& ps = c.ps;
  require(ps.servers >= 1, "--ps-servers must be at least 1, got " + std::to_string(ps.servers));
  require(ps.staleness >= 0, "--staleness must be at least 0, got " + std::to_string(ps.staleness));
  positive(ps.timeout_s, "--ps-timeout-s");
  at_most(ps.timeout_s, kMaxSeconds, "--ps-timeout-s");
  if (c.mode != ModeKind::ps) return;
  require(ps.servers < world, "--ps-servers " + std::to_string(ps.servers) + " leaves no worker among " +
                                  ranks(world) + " (the last K ranks serve: start more ranks)");
  require(!c.pipeline.pipelined(), "--mode ps does not combine with --pipeline-stages or --micro-batches");
  require(!c.sync_batchnorm, "--sync-batchnorm needs --mode sync: parameter-server workers step on their own, with "
                             "no global batch to share statistics over");
}

// ZeRO stage 1 shards the optimizer of plain data parallel, whose exchange is float32 on the host.
void validate_sharding(const TrainConfig& c) {
  if (!c.parallel.shard_optimizer) return;
  require(c.parallel.mode != ModeKind::ps, "--shard-optimizer needs --mode sync: parameter servers already split "
                                           "the optimizer's state between them");
  require(!c.parallel.pipeline.pipelined(), "--shard-optimizer is for data parallel: pipeline stages "
                                            "(--pipeline-stages, --micro-batches) keep their optimizer whole");
  require(!c.compress, "--shard-optimizer reduce-scatters float32 gradients: leave --compress out");
  require(c.device.kind != DeviceKind::cuda, "--shard-optimizer runs on the CPU: leave it out with --device cuda "
                                             "(GPU gradients are averaged by NCCL's allreduce)");
}

// --init-from and --reset-head choose a run's first weights; a resumed run has its checkpoint's.
void validate_fine_tune(const TrainConfig& c) {
  const FineTuneConfig& f = c.fine_tune;
  require(!f.reset_head || !f.init_from.empty(),
          "--reset-head needs --init-from (the trained model whose output layer it starts anew)");
  require(f.init_from.empty() || c.resume.kind == ResumeFrom::nothing,
          "--init-from and --resume both give the starting weights: a resumed run continues its checkpoint's "
          "(give --freeze again, without --init-from)");
}

}  // namespace

void validate(const TrainConfig& c, int world) {
  validate_schedule(c);
  validate_optimizer(c.optimizer);
  validate_clipping(c.parallel.clip_grad_norm);
  validate_data(c.data, Split::train);
  validate_checkpoints(c);
  validate_early_stop(c);
  validate_engine(c.parallel.engine);
  validate_pipeline(c.parallel.pipeline, c.batch, world);
  validate_servers(c.parallel, world);
  validate_sharding(c);
  require(!c.compress || c.parallel.mode != ModeKind::ps,
          "--compress applies to the allreduce of --mode sync; parameter servers exchange float32 gradients");
  validate_fine_tune(c);
  validate_gpu(c.device.gpu);
  require(c.straggler_rank >= -1 && c.straggler_rank < world,
          "--straggler-rank " + std::to_string(c.straggler_rank) + " is outside the job's ranks 0.." +
              std::to_string(world - 1) + " (-1: none)");
  not_negative(c.straggler_ms, "--straggler-ms");
  at_most(c.straggler_ms, 3.6e6, "--straggler-ms");  // an hour a step
}

void validate_for_data(const TrainConfig& c, bool classification, bool validation_split) {
  const std::string task = classification ? "classification" : "regression";
  require(c.label_smoothing == 0.0f || classification,
          "--label-smoothing is for classification (it smooths class labels); this data is for regression");
  require(monitor_fits(c.monitor, classification),
          "--monitor " + name_of(c.monitor) + ": this data is for " + task + ", whose validation metrics are " +
              "val_loss and " + (classification ? "val_accuracy" : "val_mae"));
  const std::string needs = " needs a validation split to monitor: --val FILES, or val-*.h5 shards in --data";
  require(!c.early_stop_patience || validation_split, "--early-stop-patience" + needs);
  require(c.save_best.empty() || validation_split, "--save-best" + needs);
}

void validate_stages(const PipelineConfig& p, size_t layers) {
  require(static_cast<size_t>(p.stages) <= layers, "--pipeline-stages " + std::to_string(p.stages) +
                                                       " is more stages than the model's " + std::to_string(layers) +
                                                       " layers");
  if (p.split.empty()) return;
  require(p.split.size() == static_cast<size_t>(p.stages - 1),
          "--split names " + std::to_string(p.split.size()) + " boundaries; " + std::to_string(p.stages) +
              " stages need " + std::to_string(p.stages - 1));
  int previous = 0;
  for (int first : p.split) {
    require(first > previous && static_cast<size_t>(first) < layers,
            "bad --split: stage boundaries must increase from 1 to " + std::to_string(layers - 1) +
                " (the model's layers are 0.." + std::to_string(layers - 1) + "), got " + std::to_string(first));
    previous = first;
  }
}

namespace {

// What eval and predict share: forward passes of --batch samples, on --threads or a --gpu.
void validate_inference(int64_t batch, int threads, const DeviceConfig& device) {
  require(batch >= 1, "--batch must be at least 1");
  at_most(batch, kMaxBatch, "--batch");
  validate_threads(threads);
  validate_gpu(device.gpu);
}

}  // namespace

void validate(const EvalConfig& c) {
  validate_inference(c.batch, c.threads, c.device);
  validate_data(c.data, c.split);
}

void validate(const PredictConfig& c) {
  validate_inference(c.batch, c.threads, c.device);
  validate_prefetch(c.prefetch);
}

void validate(const DoctorConfig& c) {
  validate_threads(c.threads);
  validate_gpu(c.gpu);
}

void validate(const GenerateConfig& c) {
  require(c.tokens >= 1, "--tokens must be at least 1, got " + std::to_string(c.tokens));
  at_most(c.tokens, kMaxGeneratedTokens, "--tokens");
  require(std::isfinite(c.temperature) && c.temperature >= 0.0f && c.temperature <= kMaxTemperature,
          "--temperature must be from 0 (always the most likely byte) to " + float_text(kMaxTemperature) + ", got " +
              float_text(c.temperature));
  require(c.top_k >= 0, "--top-k must not be negative (0: every byte may be drawn), got " + std::to_string(c.top_k));
  validate_threads(c.threads);
  if (const auto at = invalid_utf8_at(c.prompt)) {
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02x", static_cast<unsigned char>(c.prompt[*at]));
    throw Error("--prompt is not valid UTF-8: byte " + std::to_string(*at) + " (" + byte + ") starts no character");
  }
}

}  // namespace ringtrain
