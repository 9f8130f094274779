// Plain configuration handed down from the CLI, typed: src/cli parses flags and config files into these, and
// validate (validate.hpp) checks them once; nothing below reads a setting's text.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ringtrain/comm/mpi_communicator.hpp"
#include "ringtrain/data/augment.hpp"
#include "ringtrain/data/prep.hpp"
#include "ringtrain/data/shard_set.hpp"
#include "ringtrain/data/synthetic.hpp"
#include "ringtrain/nn/lr_schedule.hpp"
#include "ringtrain/nn/optimizer.hpp"
#include "ringtrain/parallel/parallel_mode.hpp"
#include "ringtrain/tensor/device.hpp"
#include "ringtrain/tensor/enum_names.hpp"
#include "ringtrain/train/monitor.hpp"

namespace ringtrain {

struct DataSources {
  std::string dir;    // a `ringtrain prep` output directory: <dir>/{train,val,test}-*.h5
  // --data synthetic:...: samples made in memory instead (dir is then ""): train's training split, the split
  // eval scores. The other splits come only from their explicit sources.
  std::optional<SyntheticData> synthetic;
  std::string train;  // explicit file, directory or glob; overrides dir for that split
  std::string val;
  std::string test;
  int64_t window_shards = 0;  // shuffle window (0 = all shards)
  int prefetch = 4;
  std::string stage_to;       // node-local directory the shards are copied to first ("%n": node index); "" = none
  // stage_to is the default, this job's own directory in TMPDIR (no --stage-to): removed when the run ends
  // normally, so that node-local disks do not fill with every job's copies.
  bool remove_staged = false;

  // The source for a split: the explicit one, else the dir layout when it has such shards, else "".
  std::string source(Split split) const;
  // Why source(split) is "", as an error message: no --data, a directory that is not there, or no shards.
  std::string why_no_source(Split split) const;
  // --train, --val or --test ("" when not given).
  const std::string& explicit_source(Split split) const;
};

enum class DeviceKind {
  cpu,
  cuda,
  automatic,  // cuda where a GPU is present
};
inline constexpr EnumNames<DeviceKind, 3> kDeviceKindNames{
    {{DeviceKind::cpu, "cpu"}, {DeviceKind::cuda, "cuda"}, {DeviceKind::automatic, "auto"}}};
constexpr const auto& enum_names(DeviceKind) { return kDeviceKindNames; }

struct DeviceConfig {
  DeviceKind kind = DeviceKind::cpu;
  int gpu = -1;              // -1: the node-local rank's GPU (SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK, ...)
  Precision precision = Precision::fp32;
};

// How the learning rate follows the number of replicas.
enum class LrScaling {
  none,
  linear,  // lr x replicas, reached by the warm-up ramp from lr (Goyal et al.)
};
inline constexpr EnumNames<LrScaling, 2> kLrScalingNames{{{LrScaling::none, "none"}, {LrScaling::linear, "linear"}}};
constexpr const auto& enum_names(LrScaling) { return kLrScalingNames; }

// What rank 0 shows of the steps between its epoch lines (src/train/callbacks/progress_*.cpp).
enum class ProgressKind {
  automatic,  // a bar on a terminal, else lines (choose_progress, callbacks.hpp)
  bar,        // one line redrawn in place: step/steps, running loss, throughput, ETA
  lines,      // a line every --log-every steps
  none,       // neither: the epoch lines alone
};
inline constexpr EnumNames<ProgressKind, 4> kProgressKindNames{{{ProgressKind::automatic, "auto"},
                                                                {ProgressKind::bar, "bar"},
                                                                {ProgressKind::lines, "lines"},
                                                                {ProgressKind::none, "none"}}};
constexpr const auto& enum_names(ProgressKind) { return kProgressKindNames; }

// Where a run starts: afresh, from the newest valid checkpoint in the checkpoint directory (afresh when
// there is none: `--resume auto`), or from one checkpoint file.
struct ResumeFrom {
  enum Kind { nothing, newest, file } kind = nothing;
  std::string path;  // kind == file
};

// Steps first..last, counted from 1 as the run counts them (a resumed run goes on counting).
struct StepRange {
  int64_t first = 0, last = 0;
};

// --run-dir (run_dir.hpp): one directory holding a run's settings, log, metrics, model, checkpoints and record.
struct RunDirConfig {
  std::string dir;           // "" = none; "%j" expanded by the CLI
  std::string settings;      // settings.ini: every option of the run as `key = value` lines that --config reads
  std::string command_line;  // as the process was started, for run.json
};

// Fine-tuning (train/fine_tune.hpp). One item of --freeze: top-level layers by name, a glob ("conv*", as
// fnmatch matches), or by index, layers [first, end) (end -1: to the last layer).
struct LayerSelector {
  std::string text;  // as given, for messages
  std::string glob;  // "" for an index range
  int64_t first = 0, end = 0;
};

struct FineTuneConfig {
  std::string init_from;                // a model file or checkpoint whose matching tensors start the model
  std::vector<LayerSelector> freeze;    // layers whose parameters take no updates
  bool reset_head = false;              // the last linear layer starts new (another number of classes)
};

struct TrainConfig {
  std::string model = "mlp";  // preset or layer spec (nn/model_spec.hpp)
  std::string config_file;    // the --config file the settings came from, if any: an input no output may replace
  DataSources data;
  Augmentation augment;       // of the training samples (data/augment.hpp)
  int64_t batch = 64;         // per rank: the global batch is batch x ranks
  int64_t epochs = 5;
  int64_t max_steps = 0;      // > 0: stop after this many steps (tests, quick studies)
  OptimizerConfig optimizer;
  float lr = 0.05f;
  LrScheduleKind lr_schedule = LrScheduleKind::constant;
  double warmup_epochs = 0.0;
  double lr_step_epochs = 1.0;           // step schedule: decay interval
  float lr_gamma = 0.1f;
  float lr_min = 0.0f;
  LrScaling lr_scaling = LrScaling::none;
  ParallelConfig parallel;
  int threads = 1;
  uint64_t seed = 0;
  std::string metrics_csv;   // "" = none
  std::string save_model;    // "" = none
  int64_t log_every = 0;     // > 0: also print every this many steps
  std::string timeline;      // "" = none; else a Chrome trace JSON written by rank 0
  StepRange timeline_steps;  // --timeline-steps A:B; first 0 = every step
  AllreduceAlgorithm allreduce = AllreduceAlgorithm::automatic;  // the world communicator's (the CLI builds it)
  std::optional<HalfFormat> compress;  // --compress: the world communicator's too
  DeviceConfig device;
  int straggler_rank = -1;    // this rank sleeps straggler_ms before every step (studies of slow workers)
  double straggler_ms = 0.0;
  std::string checkpoint_dir;     // "" = no checkpoints (checkpoint.hpp)
  int64_t checkpoint_every = 0;   // steps; 0 = only at the end and when asked to stop
  int keep_checkpoints = 3;
  ResumeFrom resume;
  double peer_timeout_s = 10.0;   // the CLI's heartbeat (comm/heartbeat.hpp); 0 = none
  // Watching a run. The CLI's --progress default is auto; a Trainer made in code prints lines unless told.
  ProgressKind progress = ProgressKind::lines;
  std::string tensorboard_dir;    // "" = none; else TensorBoard event files written there by rank 0
  // Early stopping and --save-best watch a validation metric (monitor.hpp); --l1 is OptimizerConfig::l1.
  std::optional<int64_t> early_stop_patience;  // epochs without improvement that end the run; none: no early stop
  Monitor monitor = Monitor::val_loss;
  double min_delta = 0.0;
  std::string save_best;        // "" = none; else the best epoch's model, written when an epoch improves
  float label_smoothing = 0.0f; // cross-entropy's targets: (1 - eps) * onehot + eps / classes
  RunDirConfig run_dir;
  FineTuneConfig fine_tune;
};

struct EvalConfig {
  std::string model_file;
  DataSources data;
  Split split = Split::test;
  int64_t batch = 256;
  int threads = 1;
  AllreduceAlgorithm allreduce = AllreduceAlgorithm::automatic;
  DeviceConfig device;
  std::string report_dir;  // --report: "" = none (train/report/report.hpp)
};

// `ringtrain predict`: what the output file holds is chosen by its extension (the CLI reads it).
enum class PredictionFormat { csv, hdf5 };

struct PredictConfig {
  std::string model_file;
  // Shards (a file, a directory, a glob, or a `prep` directory, of which `split` is read), an IDX images
  // file, or a raw CSV (train/predict.hpp: open_prediction_input).
  std::string input;
  Split split = Split::test;
  MissingValues missing = MissingValues::error;  // a raw CSV's missing cells (drop is refused: a row per row)
  std::string out;
  PredictionFormat format = PredictionFormat::csv;
  int64_t batch = 256;
  int threads = 1;
  int prefetch = 4;
  AllreduceAlgorithm allreduce = AllreduceAlgorithm::automatic;  // the world communicator's (the CLI builds it)
  DeviceConfig device;
};

// `ringtrain doctor` (doctor.hpp): the settings of the training it checks the job for, as train takes them.
struct DoctorConfig {
  int threads = 1;  // --threads: compute threads per rank
  int gpu = -1;     // --gpu: -1 = the node-local rank's, as --device cuda picks it
};

}  // namespace ringtrain
