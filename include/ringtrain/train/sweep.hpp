// `ringtrain sweep`: many training runs of one base configuration, each with other values of a few settings
// (a grid, random draws or both), in one directory:
//   OUT/sweep.json        what was swept (the record --resume compares and the plot reads)
//   OUT/trials.csv        one row per trial: its directory and its value of each swept setting
//   OUT/trial-NNN/        one run directory per trial (run_dir.hpp), its settings.ini the base with the trial's
//                         values, which `ringtrain train --config OUT/trial-NNN/settings.ini --run-dir ...` runs
//   OUT/sweep.sbatch      with --slurm: a job array, one task per trial
//   OUT/summary.csv, OUT/sweep.png   written by --collect
// The keys are option names to this layer, and the values text: the CLI, which knows the options, checks both
// and writes each trial's settings.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ringtrain/tensor/enum_names.hpp"

namespace ringtrain {

// Every listed value of a setting: the trials take the product of the grid's axes.
struct GridAxis {
  std::string key;
  std::vector<std::string> values;
};

enum class Distribution {
  uniform,     // low + u (high - low)
  loguniform,  // exp of a uniform draw between log(low) and log(high): each decade as likely
};
inline constexpr EnumNames<Distribution, 2> kDistributionNames{
    {{Distribution::uniform, "uniform"}, {Distribution::loguniform, "loguniform"}}};
constexpr const auto& enum_names(Distribution) { return kDistributionNames; }

// A setting drawn at random for each trial, from [low, high].
struct RandomAxis {
  std::string key;
  Distribution distribution = Distribution::uniform;
  double low = 0.0, high = 0.0;
};

struct SweepSpace {
  std::vector<GridAxis> grid;
  std::vector<RandomAxis> random;
  int64_t draws = 1;   // random draws per grid point (--trials)
  uint64_t seed = 0;
};

// One trial: its directory's name and its value of each swept setting, grid axes first, in the order given.
struct Trial {
  int64_t index = 0;  // from 0: the job array's task
  std::string name;   // trial-000
  std::vector<std::pair<std::string, std::string>> values;
};

// The product of the grid's axes (the last axis varying fastest), each point with `draws` random draws (or
// `draws` draws alone without a grid). A draw is a function of the seed, its axis and its trial alone, printed
// to 6 significant digits.
std::vector<Trial> make_trials(const SweepSpace& space);
// The grid's product, throwing Error when it would exceed kMaxTrials.
int64_t trial_count(const SweepSpace& space);
inline constexpr int64_t kMaxTrials = 100000;

// A SLURM job array: one task per trial, each task `ntasks` ranks (srun --mpi=pmix).
struct SlurmArray {
  int ntasks = 1;
  int nodes = 0;  // 0: not asked for
  int cpus_per_task = 1;
  std::string time;                  // --time, "" = the partition's default
  std::vector<std::string> options;  // more #SBATCH lines, each "--" + this (partition=gpu, exclusive)
  bool submit = false;               // sbatch it, rather than print the command
};

struct SweepConfig {
  SweepSpace space;
  std::string out;
  std::string base_config;               // "" = train's defaults
  std::vector<std::string> train_flags;  // given after --, for every trial
  bool resume = false;                   // continue the sweep in `out`: its finished trials are kept
  std::string launcher;                  // local trials run under it ("mpirun -np 2"); "" = one process
  std::optional<SlurmArray> slurm;       // a job array instead of local runs
};

// A trial and its settings.ini, as the CLI wrote it.
struct PlannedTrial {
  Trial trial;
  std::string settings;
};

// Checks `config.out` (an empty or new directory; with resume, one that holds this very sweep, whose
// finished trials must have the settings planned now) and writes sweep.json, trials.csv and each unfinished
// trial's directory and settings.ini. Returns the unfinished trials, those to run.
std::vector<const PlannedTrial*> prepare_sweep(const SweepConfig& config, const std::vector<PlannedTrial>& trials);

// Runs each trial, one after another: `ringtrain train --config T/settings.ini --run-dir T`, under the
// launcher when there is one, its output in T/output.txt; a line per trial to `out`. A failed trial does not
// stop the sweep; a stop request (SIGINT, SIGTERM: passed on to the trial) ends it after the trial. Returns the
// number of trials that did not finish.
int64_t run_trials_locally(const SweepConfig& config, const std::vector<const PlannedTrial*>& trials,
                           std::ostream& out);

// Writes OUT/sweep.sbatch, an array of one task per trial, and returns its path.
std::string write_slurm_array(const SweepConfig& config, const std::vector<const PlannedTrial*>& trials);
// Submits it (sbatch --parsable) and returns the job id; Error with sbatch's words when it refuses.
std::string submit_slurm_array(const std::string& script);

// --collect: the trials of a sweep ranked by a column of their metrics.csv.
enum class Goal { max, min };
inline constexpr EnumNames<Goal, 2> kGoalNames{{{Goal::max, "max"}, {Goal::min, "min"}}};
constexpr const auto& enum_names(Goal) { return kGoalNames; }

struct CollectConfig {
  std::string dir;
  std::string metric;        // "" = the validation metric (val_accuracy, val_mae) of the trials' CSVs
  std::optional<Goal> goal;  // none: max for an accuracy, min for anything else (losses, errors)
};

// Prints the ranking, writes DIR/summary.csv and DIR/sweep.png (a line says why when there is no plot).
void collect_sweep(const CollectConfig& config, std::ostream& out);

// This program's own path (the trials and the job array run it).
std::string this_executable();

}  // namespace ringtrain
