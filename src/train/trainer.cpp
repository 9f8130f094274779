#include "ringtrain/train/trainer.hpp"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/comm/timeline.hpp"
#include "ringtrain/data/device_batches.hpp"
#include "ringtrain/data/synthetic.hpp"
#include "ringtrain/nn/embedding.hpp"
#include "ringtrain/nn/model_spec.hpp"
#include "ringtrain/tensor/blas.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/callbacks.hpp"
#include "ringtrain/train/device_choice.hpp"
#include "ringtrain/train/event_file.hpp"
#include "ringtrain/train/freeze.hpp"
#include "ringtrain/train/init_from.hpp"
#include "ringtrain/train/output_file.hpp"
#include "ringtrain/train/run_files.hpp"
#include "ringtrain/train/validate.hpp"

namespace ringtrain {

namespace {

// Token data's ids run over the vocabulary its shards declare: an embedding with a smaller table would meet an id
// past it mid-run, on whichever rank's batch held one. Refused before training, alike on every rank.
void check_embedding_vocabulary(Model& model, const ShardMeta& data) {
  if (data.tokens == 0) return;
  for (size_t i = 0; i < model.size(); ++i)
    if (const auto* e = dynamic_cast<const Embedding*>(&model.layer(i)); e && e->vocabulary() < data.num_classes)
      throw CollectiveError("layer " + std::to_string(i) + " '" + e->spec() + "' takes token ids below " +
                            std::to_string(e->vocabulary()) + ", but the data's vocabulary has " +
                            std::to_string(data.num_classes) + " tokens (embedding(out,...) takes the data's)");
}

using Clock = Timeline::Clock;

// Per-layer forward and backward spans on the training row of the timeline; an evaluation's forwards are
// named apart from training's.
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
  void forward_begin(size_t, Mode) override { begin_ = Clock::now(); }
  void forward_end(size_t i, Mode mode) override {
    timeline_->span(Timeline::training, (mode == Mode::eval ? "eval forward " : "forward ") + names_[i], begin_,
                    Clock::now());
  }
  void backward_begin(size_t) override { begin_ = Clock::now(); }
  void backward_end(size_t i) override { timeline_->span(Timeline::training, "backward " + names_[i], begin_, Clock::now()); }

 private:
  Model& model_;
  Timeline* timeline_;
  std::vector<std::string> names_;
  Clock::time_point begin_;
};

// Synthetic samples (each replica's default share of them), or the training shards.
std::unique_ptr<SampleSource> open_train_set(const DataSources& data, uint64_t seed, int replicas) {
  if (data.synthetic) return std::make_unique<SyntheticSource>(*data.synthetic, seed, Split::train, replicas);
  const std::string source = data.source(Split::train);
  if (source.empty()) throw Error(data.why_no_source(Split::train));
  return std::make_unique<ShardSet>(ShardSet::open(source));
}

// Validation and test shards: of the training shards' dataset, or beside synthetic data fitting its model.
std::unique_ptr<SampleSource> open_optional(const DataSources& data, Split split, const ShardMeta& like) {
  const std::string source = data.source(split);
  if (source.empty()) return nullptr;
  auto set = std::make_unique<ShardSet>(ShardSet::open(source));
  if (data.synthetic) check_same_task(like, set->meta());
  else check_compatible(like, set->meta());
  return set;
}

// The settings line of a checkpoint that records how many steps its run's learning-rate schedule spans.
constexpr const char* kScheduleSteps = "lr schedule steps";

// The line that tells a resumed run's replicas or global batch from its checkpoint's; "" when neither differs
// (or the checkpoint does not say).
std::string layout_change(const BatchLayout& saved, const BatchLayout& now, const ResumePlace& place,
                          int64_t samples, const LrSchedule& lr) {
  if (!saved.recorded() || saved == now) return "";
  if (saved.global_batch == now.global_batch)
    return "the checkpoint's run had " + describe(saved) + ", this one has " + describe(now) +
           ": the same global batch of " + std::to_string(now.global_batch) + ", so the same samples at every step";
  return "the global batch changed from " + std::to_string(saved.global_batch) + " (" + describe(saved) + ") to " +
         std::to_string(now.global_batch) + " (" + describe(now) + "): the epoch goes on from its sample " +
         std::to_string(place.sample) + " of " + std::to_string(samples) +
         ", and the learning-rate schedule from its step " + std::to_string(place.schedule_step) + " of " +
         std::to_string(lr.total_steps) + ", where those samples put it";
}

// A setting as every rank prints it, at float precision: 0.05, not 0.0500000007.
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.7g", v);
  return buf;
}

}  // namespace

// Everything one call of run() builds: this rank's data stream, the mode, the callbacks, and where the run
// stands.
struct Trainer::Run {
  Run(const SampleSource& train, const LoaderConfig& loader_config, Device device)
      : loader(train, loader_config), batches(loader, device) {}
  BatchLoader loader;
  DeviceBatches batches;
  std::optional<BatchStream> stream;  // once the resumed place is known
  // The learning-rate schedule's step less the run's: not 0 after a resume onto another global batch, since the
  // schedule follows the samples seen (resume_place).
  int64_t schedule_offset = 0;
  std::unique_ptr<Timeline> timeline;
  std::unique_ptr<LayerSpans> spans;
  std::unique_ptr<ParallelMode> mode;
  std::unique_ptr<BatchLoader> val_loader;
  LrSchedule lr;
  std::unique_ptr<TrainContext> context;  // what the callbacks work with
  CallbackList callbacks;
  TrainState state;
  TrainResult result;
  Clock::time_point started, epoch_started;
};

Trainer::Trainer(const TrainConfig& config, Communicator& world) : config_(config), world_(world) {
  std::string failure;
  try {
    validate(config_, world_.size());
  } catch (const std::exception& e) {
    failure = e.what();
  }
  raise_if_any_failed(world_, failure);  // before staging: every rank must know there is nothing to stage
  config_.progress = choose_progress(config_.progress, world_);  // a bar on rank 0's terminal, else lines
  config_.data.stage_to = agree_stage_dir(config_.data.stage_to, world_);
  config_.data.remove_staged = agree_any(world_, config_.data.remove_staged) && !config_.data.stage_to.empty();
  if (!config_.data.stage_to.empty()) {
    // Against the original shards, which a run on staged copies would otherwise not know it reads, and before
    // the copying: open() checks again against the copies.
    try {
      if (world_.rank() == 0) check_outputs(config_, source_files(config_.data, config_));
    } catch (const std::exception& e) {
      failure = e.what();
    }
    raise_if_any_failed(world_, failure);
  }
  if (!config_.data.stage_to.empty()) config_.data = stage_data(config_.data, world_, staging_);
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
  const int replicas = data_share(config_.parallel, world_.rank(), world_.size()).replicas;
  train_set_ = open_train_set(config_.data, config_.seed, replicas);
  val_set_ = open_optional(config_.data, Split::val, train_set_->meta());
  test_set_ = open_optional(config_.data, Split::test, train_set_->meta());
  validate_for_data(config_, train_set_->meta().classification(), val_set_ != nullptr);
  check_augmentation(config_.augment, train_set_->meta().sample_shape);
  if (world_.rank() == 0) {
    check_outputs(config_, input_files({train_set_.get(), val_set_.get(), test_set_.get()}, config_));
    if (!config_.checkpoint_dir.empty()) {
      prepare_checkpoint_dir(config_.checkpoint_dir);
      checkpoint_lock_.emplace(config_.checkpoint_dir);
      remove_stale_temporaries(config_.checkpoint_dir, "step-");  // under the lock: no other job writes there
      check_no_foreign_checkpoints(config_);
    }
    if (!config_.tensorboard_dir.empty()) prepare_event_dir(config_.tensorboard_dir);
  }
  const ShardMeta& meta = train_set_->meta();
  // Built whole on the host from the seed on every rank; the parallel mode moves what this rank runs to the
  // device, so every device and every pipeline split starts from the same weights.
  model_ = std::make_unique<Model>(config_.model, meta.sample_shape, meta.outputs(), derive_seed(config_.seed, 0));
  validate_stages(config_.parallel.pipeline, model_->size());
  check_embedding_vocabulary(*model_, meta);
  // Fine-tuning: the built model takes a trained one's tensors and freezes layers before a mode moves or shards it.
  const FineTuneConfig& tune = config_.fine_tune;
  if (!tune.init_from.empty())
    fine_tune_note_ = describe(init_from(tune.init_from, tune.reset_head, *model_, meta.target_space()), *model_);
  freeze_layers(tune.freeze, *model_, tune.reset_head ? head_layer(*model_) : model_->size());
  fine_tune_note_ += describe_frozen(*model_);
  const bool serving =
      config_.parallel.mode == ModeKind::ps && world_.rank() >= world_.size() - config_.parallel.ps.servers;
  device_ = serving ? Device::cpu : start_device(config_.device, &device_note_);  // servers work on the host
  loss_ = make_loss(meta.target_space(), device_, config_.label_smoothing);
  optimizer_ = make_optimizer(config_.optimizer, device_);
}

// What every rank must agree on: a rank with another model, batch or learning rate would train something
// else, and one with another fusion size or allreduce would hang in mismatched collectives.
std::vector<std::pair<std::string, std::string>> Trainer::settings() const {
  const OptimizerConfig& o = config_.optimizer;
  const ShardMeta& meta = train_set_->meta();
  const PipelineConfig& pipe = config_.parallel.pipeline;
  const bool servers = config_.parallel.mode == ModeKind::ps;
  std::string split;
  for (int first : pipe.split) {
    if (!split.empty()) split += ',';
    split += std::to_string(first);
  }
  // "--flag" lines hold a flag's value as given; the lines without dashes describe the job.
  std::vector<std::pair<std::string, std::string>> s = {{"--model", model_->spec()},
          {"training data", counted(train_set_->samples(), "sample") + " of " + shape_str(meta.sample_shape) + " " +
                                train_set_->origin()},
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
          {"--lr-schedule", name_of(config_.lr_schedule)},
          {"--warmup-epochs", num(config_.warmup_epochs)},
          {"--lr-step-epochs", num(config_.lr_step_epochs)},
          {"--lr-gamma", num(config_.lr_gamma)},
          {"--lr-min", num(config_.lr_min)},
          {"--lr-scaling", name_of(config_.lr_scaling)},
          {"--seed", std::to_string(config_.seed)},
          {"--shuffle-window", std::to_string(config_.data.window_shards)},
          {"--mode", name_of(config_.parallel.mode)},
          {"--pipeline-stages", std::to_string(pipe.stages)},
          {"--micro-batches", std::to_string(pipe.micro_batches)},
          {"--schedule", name_of(pipe.schedule)},
          {"--split", split},
          {"--ps-servers", std::to_string(config_.parallel.ps.servers)},
          {"--staleness", std::to_string(config_.parallel.ps.staleness)},
          // Sync batchnorm adds allreduces inside every batchnorm's forward and backward.
          {"--sync-batchnorm", config_.parallel.sync_batchnorm ? "true" : "false"},
          // Sharded and unsharded ranks would meet in different collectives (a checkpoint resumes either way).
          {"--shard-optimizer", config_.parallel.shard_optimizer ? "true" : "false"},
          {"--device", name_of(config_.device.kind)},
          // The device in use (what --device auto chose); parameter servers work on the host whatever the
          // workers use, so with them every rank gives the flag's value.
          {"device", servers ? name_of(config_.device.kind) : name_of(device_)},
          {"--precision", name_of(config_.device.precision)},
          {"--allreduce", name_of(config_.allreduce)},
          {"--compress", config_.compress ? name_of(*config_.compress) : "none"},
          {"gradient averaging", gradient_backend()},
          {"--fusion-mb", num(static_cast<double>(config_.parallel.engine.fusion_bytes) / (1 << 20))},
          // The steps at which the running score is summed over the ranks follow these (score_every).
          {"--log-every", std::to_string(config_.log_every)},
          {"--progress", name_of(config_.progress)},
          {"TensorBoard", config_.tensorboard_dir.empty() ? "off" : "on"},
          // Early stopping's decision and --save-best's gathers are collective: every rank must watch alike.
          {"--early-stop-patience", config_.early_stop_patience ? std::to_string(*config_.early_stop_patience) : ""},
          {"--monitor", name_of(config_.monitor)},
          {"--min-delta", num(config_.min_delta)},
          {"--save-best", config_.save_best},
          {"--l1", num(o.l1)},
          {"--label-smoothing", num(config_.label_smoothing)}};
  // Fine-tuning: ranks starting from other weights, or freezing other layers, would drift apart (and wait
  // for gradients the others never send). The lines are there only when used, so that checkpoints of runs
  // without them stay comparable (checkpoint_mismatch).
  // Only when on, as the fine-tuning lines: checkpoints of runs without it stay comparable.
  if (config_.parallel.clip_grad_norm > 0.0f) s.emplace_back("--clip-grad-norm", num(config_.parallel.clip_grad_norm));
  if (!config_.fine_tune.init_from.empty()) {
    s.emplace_back("--init-from", config_.fine_tune.init_from);
    s.emplace_back("--reset-head", config_.fine_tune.reset_head ? "true" : "false");
  }
  if (const std::string frozen = frozen_names(*model_); !frozen.empty()) s.emplace_back("--freeze", frozen);
  if (config_.augment.any()) s.emplace_back("--augment", to_string(config_.augment));  // the samples it sees
  return s;
}

Settings Trainer::checkpoint_settings() const {
  Settings s = settings();
  s.emplace_back("ranks", std::to_string(world_.size()));
  return s;
}

std::optional<ResumePlace> Trainer::load_checkpoint(const BatchLayout& layout, int64_t steps_per_epoch,
                                                   std::ostream& log) {
  std::string path = config_.resume.path;
  if (config_.resume.kind == ResumeFrom::newest) {
    if (world_.rank() == 0) path = checkpoints_->newest_valid(log);
    path = allgather_strings(world_, path)[0];  // every rank reads the one rank 0 chose
    if (path.empty()) {
      log << "no checkpoint in " << checkpoints_->dir() << " to resume from: starting afresh" << std::endl;
      return std::nullopt;
    }
  }
  std::string failure;
  ResumePlace place;
  try {
    resumed_ = read_checkpoint(path, *model_, optimizer_->state_names());
    const TrainProgress& at = resumed_->progress;
    const std::string mismatch = checkpoint_mismatch(resumed_->settings, checkpoint_settings(), at.layout.recorded());
    if (!mismatch.empty()) throw Error("'" + path + "' is another run's: " + mismatch);
    const bool servers = config_.parallel.mode == ModeKind::ps;
    if (const std::string refused = layout_refusal(at.layout, layout, servers); !refused.empty())
      throw Error("'" + path + "': " + refused);
    const TargetSpace data = train_set_->meta().target_space();
    if (resumed_->targets.classification != data.classification)
      throw Error("'" + path + "' was trained for " + (data.classification ? "regression" : "classification") +
                  ", this data is for " + (data.classification ? "classification" : "regression"));
    if (resumed_->targets != data)
      throw Error("'" + path + "' was trained on targets standardised otherwise (y_scale and y_shift differ from "
                  "this data's): resume on the data of the prep run it was trained on");
    place = resume_place(at, layout, steps_per_epoch, train_set_->samples(), !servers, path);
    // --resume auto chose the newest valid one: anything newer is damaged, and is replaced in time.
    const bool chosen = config_.resume.kind == ResumeFrom::file;
    const std::string newer =
        world_.rank() == 0 && chosen && checkpoints_ ? checkpoints_->newest_after(resumed_->progress.step) : "";
    if (!newer.empty())
      throw Error("--checkpoint-dir '" + checkpoints_->dir() + "' holds " + newer + ", newer than '" + path +
                  "': move the newer checkpoints away or give another --checkpoint-dir (the two histories would mix)");
  } catch (const std::exception& e) {
    failure = std::string("cannot resume: ") + e.what();
  }
  raise_if_any_failed(world_, failure);
  log << "resuming from " << path << " (step " << resumed_->progress.step << ", "
      << counted(resumed_->progress.epoch, "epoch") << " done)" << std::endl;
  return place;
}

std::string Trainer::gradient_backend() const {
  if (config_.parallel.mode == ModeKind::ps) return "parameter servers";
  return device_ == Device::cuda ? "nccl" : world_.backend();
}

std::string Trainer::device_description() const {
  if (device_ == Device::cpu) return counted(config_.threads, "thread");
  return "GPU " + std::to_string(cuda_gpu()) + " (" + name_of(config_.device.precision) + ")";
}

std::string Trainer::header(int64_t steps_per_epoch, DataShare share, const LrSchedule& lr) const {
  const int ranks = world_.size(), replicas = share.replicas;
  const bool servers = config_.parallel.mode == ModeKind::ps;
  const std::string wire =
      config_.compress && device_ == Device::cpu ? ", " + name_of(*config_.compress) + " on the wire" : "";
  // --shard-optimizer exchanges the halves of an allreduce, with the optimizer's step between them.
  const std::string exchange = config_.parallel.shard_optimizer ? " reduce-scatter + allgather" : " allreduce";
  std::ostringstream out;
  const std::string replicated = replicas > 1 && !servers ? " x " + std::to_string(replicas) +
                                                                 (replicas == ranks ? " ranks (" : " replicas (") +
                                                                 gradient_backend() + exchange + wire + ")"
                                                           : std::string();
  // A ResNet's canonical spec runs to kilobytes: a preset that long goes by its name, a spec by its start.
  const std::string spec = model_->spec();
  const bool preset = expand_preset(config_.model) != config_.model;
  out << "model "
      << (spec.size() <= 300 ? spec
                             : (preset ? config_.model : excerpt(spec, 300)) + " (" +
                                   counted(static_cast<int64_t>(model_->size()), "layer") + ")")
      << "\n  input " << shape_str(model_->input_shape()) << ", "
      << counted(model_->parameter_count(), "parameter") << "; " << counted(train_set_->samples(), "training sample")
      << " " << train_set_->origin() << ", "
      << counted(steps_per_epoch, "step") << " per epoch, batch " << config_.batch
      << replicated << ", " << device_description() << "\n";
  if (!device_note_.empty()) out << "  " << device_note_ << "\n";
  out << fine_tune_note_;
  // The schedule's steps (lr.total_steps) place --steps in the epochs: after a change of global batch they are
  // not the run's (Run::schedule_offset).
  if (config_.max_steps > 0 && lr.total_steps < config_.epochs * steps_per_epoch)
    out << "  --steps " << config_.max_steps << " ends the run in epoch "
        << (lr.total_steps + steps_per_epoch - 1) / steps_per_epoch << " of " << config_.epochs
        << "; the learning-rate schedule spans those steps\n";
  if (config_.lr_scaling == LrScaling::linear)
    out << "  --lr-scaling linear: learning rate " << num(lr.base_lr) << " (--lr " << num(config_.lr) << " x "
        << counted(replicas, "replica") << ")"
        << (lr.warmup_steps > 0 ? ", warmed up from " + num(lr.warmup_from) + " over " + counted(lr.warmup_steps, "step")
                                : std::string())
        << "\n";
  if (staging_.nodes > 0)
    out << "  staged " << counted(staging_.shards, "shard") << " to " << staging_.dir << " on " << staging_.nodes << " node"
        << (staging_.nodes > 1 ? "s: " : ": ") << staging_.copied << " copied (" << staging_.bytes_copied / 1000000
        << " MB), " << staging_.kept << " already there"
        << (staging_.replaced ? ", " + std::to_string(staging_.replaced) +
                                    " of the copies replaced a staged file that no longer matched"
                              : std::string())
        << "\n";
  return out.str();
}

LrSchedule Trainer::schedule(int64_t steps_per_epoch, int replicas, int64_t offset) const {
  LrSchedule s;
  s.kind = config_.lr_schedule;
  s.base_lr = config_.lr;
  if (config_.lr_scaling == LrScaling::linear) {  // Goyal et al.: k times the batch, k times the rate, by warm-up
    s.base_lr = config_.lr * static_cast<float>(replicas);
    s.warmup_from = config_.lr;
  }
  // The schedule spans the steps the run will make: when --steps ends it before --epochs would, cosine still
  // decays to --lr-min over the run's steps, and warm-up and step decay keep their share of the run (an epoch
  // of the schedule is then steps / epochs).
  s.total_steps = config_.epochs * steps_per_epoch;
  if (config_.max_steps > 0) s.total_steps = std::min(s.total_steps, config_.max_steps + offset);
  const double epoch = static_cast<double>(s.total_steps) / static_cast<double>(config_.epochs);
  s.warmup_steps = std::llround(config_.warmup_epochs * epoch);
  s.decay_every = std::max<int64_t>(1, std::llround(config_.lr_step_epochs * epoch));
  s.gamma = config_.lr_gamma;
  s.min_lr = config_.lr_min;
  return s;
}

// Collective: this rank's data stream and the mode (from a checkpoint when resuming), and the callbacks.
std::unique_ptr<Trainer::Run> Trainer::start(std::ostream& log) {
  const DataShare share = data_share(config_.parallel, world_.rank(), world_.size());
  LoaderConfig lc;
  lc.batch = config_.batch;
  lc.seed = config_.seed;
  lc.rank = share.replica;
  lc.world = share.replicas;
  lc.window_shards = config_.data.window_shards;
  lc.prefetch = config_.data.prefetch;
  lc.augment = config_.augment;
  auto run = std::make_unique<Run>(*train_set_, lc, device_);
  const int64_t steps_per_epoch = run->loader.batches_per_epoch();  // the same on every rank (drop_last)
  if (steps_per_epoch == 0)
    throw CollectiveError("the training split has " + std::to_string(train_set_->samples()) +
                          " samples, fewer than one batch of " + std::to_string(config_.batch * share.replicas) +
                          (share.replicas > 1 ? " (" + std::to_string(share.replicas) + " replicas x --batch " +
                                                    std::to_string(config_.batch) + ")"
                                              : std::string()));
  // A checkpoint goes into the host model before the mode moves it to the device.
  const BatchLayout layout{share.replicas, run->loader.global_batch()};
  TrainProgress at;
  ResumePlace place;
  ResumePoint resume;
  std::string planned_schedule;  // the resumed run's schedule length, as its checkpoint records it
  if (config_.resume.kind != ResumeFrom::nothing) {
    if (const std::optional<ResumePlace> found = load_checkpoint(layout, steps_per_epoch, log)) {
      place = *found;
      at = resumed_->progress;
      resume = {&resumed_->optimizer, at.step, at.epoch};
      // Another global batch has other steps: the lengths are not comparable (layout_change says what changed).
      const bool same_steps = !at.layout.recorded() || at.layout.global_batch == layout.global_batch;
      for (const auto& [name, value] : resumed_->settings)
        if (name == kScheduleSteps && same_steps) planned_schedule = value;
    }
  }
  run->stream.emplace(run->batches, place.pass, place.sample);
  run->schedule_offset = place.schedule_step - at.step;
  if (!config_.timeline.empty()) {
    world_.barrier();  // one time origin for every rank
    run->timeline = std::make_unique<Timeline>(config_.timeline_steps.first, config_.timeline_steps.last);
  }
  run->spans = std::make_unique<LayerSpans>(*model_, run->timeline.get());
  run->mode = make_parallel_mode(config_.parallel, world_,
                                 {*model_, device_, *loss_, *optimizer_, config_.optimizer, config_.batch,
                                  steps_per_epoch, run->timeline.get(), std::cerr, resume});
  const BatchLayout saved_layout = at.layout;
  resumed_.reset();  // the mode has taken its part of the optimizer state
  run->lr = schedule(steps_per_epoch, share.replicas, run->schedule_offset);
  if (const std::string change = layout_change(saved_layout, layout, place, train_set_->samples(), run->lr);
      !change.empty())
    log << change << std::endl;
  Settings saved = checkpoint_settings();
  saved.emplace_back(kScheduleSteps, std::to_string(run->lr.total_steps));
  // Another --epochs or --steps moves the schedule under a resumed run: say so rather than let its rate jump.
  if (!planned_schedule.empty() && planned_schedule != saved.back().second)
    log << "the learning-rate schedule now spans " << run->lr.total_steps << " steps; the checkpoint's run planned "
        << planned_schedule << " (--epochs or --steps changed)" << std::endl;
  if (val_set_) run->val_loader = make_eval_loader(*val_set_, config_, share);
  // A resumed run picks the epoch up where the checkpoint left it.
  TrainState& state = run->state;
  state.step = at.step;
  state.epoch = state.epochs_done = at.epoch;
  state.epochs = config_.epochs;
  state.epoch_steps = place.epoch_steps;
  state.steps_per_epoch = steps_per_epoch;
  state.layout = layout;
  state.best = at.best;
  state.stream = &*run->stream;
  // A checkpoint at or beyond --steps: nothing is left to train (the test split is still scored).
  if (config_.max_steps > 0 && at.step >= config_.max_steps) {
    state.finishing = true;
    log << "the checkpoint is at step " << at.step << ", --steps " << config_.max_steps << ": nothing to train"
        << std::endl;
  }
  run->context.reset(new TrainContext{config_, world_, *run->mode, *model_, *loss_, *optimizer_,
                                      train_set_->meta().target_space(), train_set_->meta().input_transform(),
                                      test_set_.get(), share,
                                      run->timeline.get(), checkpoints_ ? &*checkpoints_ : nullptr,
                                      saved, header(steps_per_epoch, share, run->lr), at.step > 0, log});
  run->callbacks = make_callbacks(*run->context);
  for (auto& callback : extra_callbacks_) run->callbacks.add(std::move(callback));
  extra_callbacks_.clear();
  return run;
}

TrainResult Trainer::run(std::ostream& log) {
  set_compute_threads(config_.threads);
  TrainResult result;
  {
    const std::unique_ptr<Run> run = start(log);
    TrainState& state = run->state;
    run->callbacks.train_begin(state);
    run->started = Clock::now();
    while (state.epoch < config_.epochs && !state.finishing && train_epoch(*run)) end_epoch(*run);
    run->mode->end_run();  // what a GPU found in the last steps: a bad one is an error, also when stopping
    run->result.steps = state.step;
    run->result.seconds = seconds_since(run->started);
    run->result.stopped_early = state.interrupted;
    run->callbacks.train_end(state, run->result);
    result = std::move(run->result);
  }  // the readers of the staged copies have stopped
  // A stopped job (SIGTERM at the time limit) keeps its copies: requeued, it has the same job id and the
  // same directory, and finds them there.
  if (config_.data.remove_staged && !result.stopped_early) remove_staged_copies(staging_, world_);
  return result;
}

// Steps until the epoch's data ends (as the mode counts it) or a callback finishes the run; false when the
// job stops here instead (interrupted), before the epoch's end.
bool Trainer::train_epoch(Run& run) {
  TrainState& state = run.state;
  run.epoch_started = Clock::now();
  for (;;) {
    run.callbacks.step_begin(state);
    if (state.interrupted) return false;
    const Batch* batch = nullptr;
    {
      const Timeline::Scope span(run.timeline.get(), Timeline::training, "load batch");
      batch = run.mode->next_batch(*run.stream);
    }
    if (!batch) break;
    state.lr = run.lr.at(state.step + run.schedule_offset);
    run.mode->train_step(*batch, static_cast<float>(state.lr));
    ++state.step, ++state.epoch_steps;
    run.callbacks.step_end(state);
    if (state.finishing) break;
  }
  state.interrupted = !run.mode->end_epoch();
  return !state.interrupted;
}

void Trainer::end_epoch(Run& run) {
  TrainState& state = run.state;
  EpochRecord record = score_epoch(run);
  run.callbacks.epoch_end(state, record);
  run.result.epochs.push_back(std::move(record));
  // An epoch cut short by --steps is not done: a resumed run with more steps finishes it.
  state.epochs_done = state.finishing && state.epoch_steps < state.steps_per_epoch ? state.epoch : state.epoch + 1;
  ++state.epoch;
  state.epoch_steps = 0;
  state.epoch_score = {};
}

// Collective: the epoch's training score over every rank, and the validation split's.
EpochRecord Trainer::score_epoch(Run& run) {
  TrainState& state = run.state;
  EpochRecord r;
  r.epoch = state.epoch + 1;
  r.step = state.step;
  r.lr = state.lr;
  state.epoch_score += run.mode->take_score();
  r.train = run.mode->sum_over_ranks(state.epoch_score);
  r.images_per_s = static_cast<double>(r.train.samples) / seconds_since(run.epoch_started);
  run.mode->sync_buffers();
  if (run.val_loader) {
    const Timeline::Scope span(run.timeline.get(), Timeline::training, "evaluate val");
    r.val = run.mode->sum_over_ranks(run.mode->evaluate(*run.val_loader));
  }
  r.epoch_seconds = seconds_since(run.epoch_started);
  r.elapsed_seconds = seconds_since(run.started);
  return r;
}

}  // namespace ringtrain
