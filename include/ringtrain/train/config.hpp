// Plain configuration handed down from the CLI; nothing below cli parses flags.
#pragma once
#include <cstdint>
#include <string>

#include "ringtrain/nn/optimizer.hpp"
#include "ringtrain/parallel/parallel_mode.hpp"

namespace ringtrain {

struct DataSources {
  std::string dir;    // a `ringtrain prep` output directory: <dir>/{train,val,test}-*.h5
  std::string train;  // explicit file, directory or glob; overrides dir for that split
  std::string val;
  std::string test;
  int64_t window_shards = 0;  // shuffle window (0 = all shards)
  int prefetch = 4;
  std::string stage_to;       // node-local directory the shards are copied to first ("%n": node index); "" = none

  // The source for a split: the explicit one, else the dir layout when it has such shards, else "".
  std::string source(const std::string& split) const;
};

struct DeviceConfig {
  std::string kind = "cpu";  // cpu | cuda | auto (cuda where a GPU is present)
  int gpu = -1;              // -1: the node-local rank's GPU (SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK, ...)
  Precision precision = Precision::fp32;
};

struct TrainConfig {
  std::string model = "mlp";  // preset or layer spec
  DataSources data;
  int64_t batch = 64;         // per rank: the global batch is batch x ranks
  int64_t epochs = 5;
  int64_t max_steps = 0;      // > 0: stop after this many steps (tests, quick studies)
  OptimizerConfig optimizer;
  float lr = 0.05f;
  std::string lr_schedule = "constant";  // constant | step | cosine
  double warmup_epochs = 0.0;
  double lr_step_epochs = 1.0;           // step schedule: decay interval
  float lr_gamma = 0.1f;
  float lr_min = 0.0f;
  std::string lr_scaling = "none";       // none | linear: lr x ranks, warm-up ramps from lr (Goyal et al.)
  ParallelConfig parallel;
  int threads = 1;
  uint64_t seed = 0;
  std::string metrics_csv;   // "" = none
  std::string save_model;    // "" = none
  int64_t log_every = 0;     // > 0: also print every this many steps
  std::string timeline;      // "" = none; else a Chrome trace JSON written by rank 0
  std::string allreduce = "ring";  // the world communicator's: ring | mpi (the CLI builds it)
  DeviceConfig device;
  int straggler_rank = -1;    // this rank sleeps straggler_ms before every step (studies of slow workers)
  double straggler_ms = 0.0;
  std::string checkpoint_dir;     // "" = no checkpoints (checkpoint.hpp)
  int64_t checkpoint_every = 0;   // steps; 0 = only at the end and when asked to stop
  int keep_checkpoints = 3;
  std::string resume;             // "" | "auto" (newest valid in checkpoint_dir, if any) | a checkpoint file
  double peer_timeout_s = 10.0;   // the CLI's heartbeat (comm/heartbeat.hpp); 0 = none
};

struct EvalConfig {
  std::string model_file;
  DataSources data;
  std::string split = "test";
  int64_t batch = 256;
  int threads = 1;
  std::string allreduce = "ring";
  DeviceConfig device;
};

}  // namespace ringtrain
