// `ringtrain sweep`: its flags into a SweepConfig (train/sweep.hpp); every trial's settings made and checked by
// train's own parser (options.cpp) before anything is written or run; then the trials run here one after
// another, or become a SLURM job array, or (--collect) are ranked.
#include <boost/program_options.hpp>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "options.hpp"
#include "ringtrain/stop_request.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/run_dir.hpp"
#include "ringtrain/train/sweep.hpp"
#include "ringtrain/train/validate.hpp"

namespace po = boost::program_options;

namespace ringtrain::cli {

namespace {

// The flags as given, before they become a SweepConfig or a CollectConfig.
struct SweepFlags {
  std::string config, out, collect, metric, goal, launcher, time;
  std::vector<std::string> grid, random, sbatch;
  int64_t trials = 0;
  uint64_t seed = 0;
  bool resume = false, slurm = false, submit = false;
  int ntasks = 1, nodes = 0, cpus_per_task = 1;
};

po::options_description sweep_options(SweepFlags& f) {
  po::options_description o("sweep options");
  o.add_options()
      ("help,h", "show this help")
      ("config", po::value(&f.config), "the base settings: a train INI file (`key = value` lines, as settings.ini)")
      ("grid", po::value(&f.grid)->composing(), "KEY=V1,V2,...: every value of train's option KEY; the trials "
       "are the product of every --grid (repeat it)")
      ("random", po::value(&f.random)->composing(), "KEY=uniform(LOW,HIGH) or KEY=loguniform(LOW,HIGH): a value "
       "drawn for each trial (repeat it)")
      ("trials", po::value(&f.trials), "random draws per grid point (or in all, without --grid); needs --random")
      ("seed", po::value(&f.seed)->default_value(0), "seed of the random draws: the same seed, the same trials")
      ("out", po::value(&f.out), "the sweep's directory: sweep.json, trials.csv and trial-NNN/ run directories")
      ("resume", po::bool_switch(&f.resume), "continue the sweep in --out: its finished trials are kept, the others "
       "run (again, from their checkpoints where they have them)")
      ("launcher", po::value(&f.launcher), "run each local trial under this command, e.g. \"mpirun -np 2\"")
      ("slurm", po::bool_switch(&f.slurm), "write OUT/sweep.sbatch, a SLURM job array of one task per trial, "
       "instead of running the trials here")
      ("submit", po::bool_switch(&f.submit), "--slurm: submit the array with sbatch")
      ("ntasks", po::value(&f.ntasks)->default_value(1), "--slurm: ranks per trial (srun --mpi=pmix)")
      ("nodes", po::value(&f.nodes)->default_value(0), "--slurm: nodes per trial (0: SLURM's choice)")
      ("cpus-per-task", po::value(&f.cpus_per_task)->default_value(1), "--slurm: cores per rank")
      ("time", po::value(&f.time), "--slurm: each trial's time limit (sbatch --time)")
      ("sbatch", po::value(&f.sbatch)->composing(), "--slurm: another #SBATCH option without its dashes, e.g. "
       "partition=gpu (repeat it)")
      ("collect", po::value(&f.collect), "rank the trials of this sweep directory; write summary.csv and sweep.png")
      ("metric", po::value(&f.metric), "--collect: the metrics.csv column to rank by (default: the validation "
       "metric, val_accuracy or val_mae)")
      ("mode", po::value(&f.goal), "--collect: max or min (default: max for an accuracy, else min)");
  return o;
}

constexpr const char* kUsage =
    "usage: ringtrain sweep --out DIR [--config BASE.ini] --grid KEY=V1,V2,... --random KEY=DIST(LOW,HIGH) "
    "[--trials N] [--slurm] [-- train flags]\n"
    "       ringtrain sweep --collect DIR [--metric NAME] [--mode max|min]\n\n"
    "Trains every trial of a grid (the product of the --grid values) and/or random draws (--trials per grid\n"
    "point), each in its run directory DIR/trial-NNN (ringtrain train --run-dir), locally one after another or\n"
    "as a SLURM job array (--slurm). Flags after -- go to every trial. --collect ranks the trials.\n\n";

std::string trim(const std::string& text) {
  const size_t first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

// The key of "KEY=..." and the text after '=', which a train option must name and be a setting of.
std::pair<std::string, std::string> split_key(const std::string& flag, const std::string& spec,
                                              const std::string& form) {
  const size_t equals = spec.find('=');
  if (equals == std::string::npos || trim(spec.substr(0, equals)).empty())
    throw UsageError(flag + " '" + spec + "' must be " + form);
  const std::string key = trim(spec.substr(0, equals));
  if (!train_settings().count(key)) {
    const bool ours = key == "config" || key == "run-dir" || key == "resume" || key == "help";
    throw UsageError(flag + " " + spec + ": " +
                     (ours ? "'" + key + "' is not a setting a sweep varies (each trial runs with --config and "
                                         "--run-dir of its own directory)"
                           : "ringtrain train has no option '" + key + "' (ringtrain train --help lists them)"));
  }
  return {key, spec.substr(equals + 1)};
}

GridAxis parse_grid(const std::string& spec) {
  const auto [key, list] = split_key("--grid", spec, "KEY=VALUE,VALUE,..., e.g. lr=0.1,0.03");
  GridAxis axis{key, {}};
  if (trim(list).empty()) throw UsageError("--grid " + spec + ": no values after '='");
  size_t start = 0;
  for (size_t n = 1;; ++n) {
    const size_t comma = list.find(',', start);
    const std::string value = trim(list.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (value.empty()) throw UsageError("--grid " + spec + ": value " + std::to_string(n) + " is empty");
    if (std::find(axis.values.begin(), axis.values.end(), value) != axis.values.end())
      throw UsageError("--grid " + spec + ": '" + value + "' is listed twice");
    axis.values.push_back(value);
    if (comma == std::string::npos) return axis;
    start = comma + 1;
  }
}

double bound(const std::string& spec, const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(v))
    throw UsageError("--random " + spec + ": '" + text + "' is not a finite number");
  return v;
}

RandomAxis parse_random(const std::string& spec) {
  const std::string form = "KEY=uniform(LOW,HIGH) or KEY=loguniform(LOW,HIGH), e.g. lr=loguniform(1e-4,1e-1)";
  const auto [key, text] = split_key("--random", spec, form);
  const std::string dist = trim(text);
  const size_t open = dist.find('('), comma = dist.find(',');
  std::optional<Distribution> kind = enum_from_name<Distribution>(dist.substr(0, open));
  if (!kind || open == std::string::npos || comma == std::string::npos || dist.back() != ')' ||
      dist.find(',', comma + 1) != std::string::npos)
    throw UsageError("--random " + spec + ": the distribution must be uniform(LOW,HIGH) or loguniform(LOW,HIGH)");
  RandomAxis axis{key, *kind, bound(spec, trim(dist.substr(open + 1, comma - open - 1))),
                  bound(spec, trim(dist.substr(comma + 1, dist.size() - comma - 2)))};
  if (!(axis.low < axis.high)) throw UsageError("--random " + spec + ": LOW must be below HIGH");
  if (axis.distribution == Distribution::loguniform && axis.low <= 0.0)
    throw UsageError("--random " + spec + ": loguniform needs LOW above 0");
  return axis;
}

// "KEY = VALUE" lines, as the trial's settings: a value an INI line cannot hold is refused here.
std::string overrides_of(const std::vector<std::pair<std::string, std::string>>& values) {
  std::string ini;
  for (const auto& [key, value] : values) {
    if (value.find_first_of("#\n\r") != std::string::npos)
      throw UsageError("a value cannot hold '#' or a line break (settings.ini would lose it)");
    ini += key + " = " + value + "\n";
  }
  return ini;
}

// The train flags every trial gets: the base --config, then the flags after --, which may neither say where a
// trial runs nor set what the sweep varies (the trial's value would silently win).
std::vector<std::string> base_args(const SweepFlags& f, const std::vector<std::string>& train_flags,
                                   const SweepSpace& space) {
  for (const std::string& word : train_flags) {
    if (!word.starts_with("--")) continue;
    const std::string name = word.substr(2, word.find('=') - 2);
    if (name == "config" || name == "run-dir" || name == "resume" || name == "help")
      throw UsageError("--" + name + " after --: the sweep runs each trial with its own --config and --run-dir" +
                       std::string(name == "config" ? " (give the base settings as the sweep's --config)" : ""));
    auto swept = [&](const auto& axis) { return axis.key == name; };
    if (std::any_of(space.grid.begin(), space.grid.end(), swept) ||
        std::any_of(space.random.begin(), space.random.end(), swept))
      throw UsageError("--" + name + " after -- is also swept: give it one way");
  }
  std::vector<std::string> args;
  if (!f.config.empty()) args = {"--config", f.config};
  args.insert(args.end(), train_flags.begin(), train_flags.end());
  return args;
}

// The axes, each key once, and the draws.
SweepSpace read_space(const SweepFlags& f) {
  SweepSpace space;
  for (const std::string& spec : f.grid) space.grid.push_back(parse_grid(spec));
  for (const std::string& spec : f.random) space.random.push_back(parse_random(spec));
  std::vector<std::string> keys;
  for (const GridAxis& a : space.grid) keys.push_back(a.key);
  for (const RandomAxis& a : space.random) keys.push_back(a.key);
  for (size_t i = 0; i < keys.size(); ++i)
    if (std::count(keys.begin(), keys.end(), keys[i]) > 1)
      throw UsageError("'" + keys[i] + "' is swept twice (by --grid or --random): give it once");
  if (keys.empty()) throw UsageError("nothing to sweep: give --grid KEY=VALUES or --random KEY=DIST(LOW,HIGH)");
  if (!space.random.empty() && f.trials == 0)
    throw UsageError("--random needs --trials N (the draws per grid point, or in all without --grid)");
  if (space.random.empty() && f.trials != 0)
    throw UsageError("--trials draws --random settings, and there are none: the grid alone gives its trials");
  space.draws = space.random.empty() ? 1 : f.trials;
  space.seed = f.seed;
  return space;
}

// Each grid value alone through train's parser, so that a bad one is named by its flag.
void check_axes(const SweepSpace& space, const std::vector<std::string>& args) {
  for (const GridAxis& axis : space.grid)
    for (const std::string& value : axis.values) {
      try {
        parse_trial(args, overrides_of({{axis.key, value}}));
      } catch (const UsageError& e) {
        throw UsageError("--grid " + axis.key + "=" + value + ": " + e.what());
      }
    }
}

// Every trial's settings.ini, made and checked before anything is written. `world`: the ranks a trial runs on,
// for the rules about ranks (0 when a launcher decides it: those are checked as each trial starts).
std::vector<PlannedTrial> plan(const SweepConfig& c, const std::vector<std::string>& args, int world) {
  std::vector<PlannedTrial> planned;
  for (Trial& trial : make_trials(c.space)) {
    std::string values;
    for (const auto& [key, value] : trial.values) values += (values.empty() ? "" : " ") + key + "=" + value;
    const std::string which = trial.name + " (" + values + "): ";
    TrainConfig config;
    try {
      config = parse_trial(args, overrides_of(trial.values));
    } catch (const UsageError& e) {
      throw UsageError(which + e.what());
    }
    config.run_dir.dir = (std::filesystem::path(c.out) / trial.name).string();
    use_run_dir_outputs(config);
    try {
      if (world > 0) validate(config, world);
    } catch (const Error& e) {
      throw Error(which + e.what());
    }
    planned.push_back({std::move(trial), config.run_dir.settings});
  }
  return planned;
}

void check_flag_combinations(const po::variables_map& vm, const SweepFlags& f) {
  auto given = [&](const char* name) { return vm.count(name) && !vm[name].defaulted(); };
  if (!f.collect.empty()) {
    for (const char* name : {"config", "grid", "random", "trials", "seed", "out", "resume", "launcher", "slurm",
                             "submit", "ntasks", "nodes", "cpus-per-task", "time", "sbatch"})
      if (given(name))
        throw UsageError(std::string("--collect ranks a sweep's trials: it takes --metric and --mode, not --") + name);
    return;
  }
  for (const char* name : {"metric", "mode"})
    if (given(name)) throw UsageError(std::string("--") + name + " goes with --collect DIR");
  if (f.out.empty()) throw UsageError("the sweep needs --out DIR (or --collect DIR to rank one)");
  if (f.trials < 0 || (given("trials") && f.trials == 0))
    throw UsageError("--trials must be at least 1, got " + std::to_string(f.trials));
  if (f.submit && !f.slurm) throw UsageError("--submit goes with --slurm");
  if (f.slurm && !f.launcher.empty())
    throw UsageError("--launcher is for local trials; with --slurm each trial runs under srun (--ntasks ranks)");
  for (const char* name : {"ntasks", "nodes", "cpus-per-task", "time", "sbatch"})
    if (given(name) && !f.slurm) throw UsageError(std::string("--") + name + " goes with --slurm");
  if (f.ntasks < 1 || f.nodes < 0 || f.cpus_per_task < 1)
    throw UsageError("--ntasks and --cpus-per-task must be at least 1, --nodes at least 0");
}

int collect(const SweepFlags& f) {
  CollectConfig c{f.collect, f.metric, std::nullopt};
  if (!f.goal.empty()) {
    c.goal = enum_from_name<Goal>(f.goal);
    if (!c.goal) throw UsageError("--mode must be " + choices_of<Goal>() + ", got '" + f.goal + "'");
  }
  collect_sweep(c, std::cout);
  return 0;
}

std::string describe_space(const SweepSpace& space, size_t trials) {
  std::string text;
  for (const GridAxis& a : space.grid)
    text += (text.empty() ? "" : " x ") + a.key + " (" + counted(static_cast<int64_t>(a.values.size()), "value") + ")";
  if (!space.random.empty()) {
    text += (text.empty() ? "" : " x ") + counted(space.draws, "draw") + " of";
    for (const RandomAxis& a : space.random) text += " " + a.key + "=" + name_of(a.distribution);
  }
  return counted(static_cast<int64_t>(trials), "trial") + ": " + text;
}

int run_planned(const SweepConfig& c, const std::vector<PlannedTrial>& trials) {
  const std::vector<const PlannedTrial*> pending = prepare_sweep(c, trials);
  std::cout << "sweep of " << describe_space(c.space, trials.size()) << "; " << c.out << "/trials.csv lists them"
            << std::endl;
  if (pending.empty()) {
    std::cout << "every trial has finished; `ringtrain sweep --collect " << shell_word(c.out) << "` ranks them"
              << std::endl;
    return 0;
  }
  if (!c.slurm) {
    install_stop_handlers();  // Ctrl-C: the running trial stops (passed on) and the sweep after it
    return run_trials_locally(c, pending, std::cout) == 0 ? 0 : 1;
  }
  const std::string script = write_slurm_array(c, pending);
  std::cout << "wrote " << script << ": an array of " << counted(static_cast<int64_t>(pending.size()), "task") << ", "
            << counted(c.slurm->ntasks, "rank") << " each" << std::endl;
  if (!c.slurm->submit) {
    std::cout << "submit it with: sbatch " << shell_word(script) << std::endl;
    return 0;
  }
  const std::string job = submit_slurm_array(script);
  std::cout << "submitted array job " << job << ": squeue -j " << job << " shows its tasks; `ringtrain sweep --collect "
            << shell_word(c.out) << "` ranks the trials as they end" << std::endl;
  return 0;
}

}  // namespace

int run_sweep(const std::vector<std::string>& all_args) {
  const auto dashes = std::find(all_args.begin(), all_args.end(), "--");
  const std::vector<std::string> args(all_args.begin(), dashes);
  const std::vector<std::string> train_flags(dashes == all_args.end() ? dashes : dashes + 1, all_args.end());
  SweepFlags f;
  const po::options_description options = sweep_options(f);
  po::variables_map vm;
  try {
    store_flags(args, options, vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  if (vm.count("help")) {
    std::cout << kUsage << options << std::endl;
    return 0;
  }
  check_flag_combinations(vm, f);
  if (!f.collect.empty()) return collect(f);
  SweepConfig c;
  c.space = read_space(f);
  c.out = f.out;
  c.base_config = f.config;
  c.train_flags = train_flags;
  c.resume = f.resume;
  c.launcher = f.launcher;
  if (f.slurm) c.slurm = SlurmArray{f.ntasks, f.nodes, f.cpus_per_task, f.time, f.sbatch, f.submit};
  const std::vector<std::string> args_of_trials = base_args(f, train_flags, c.space);
  parse_trial(args_of_trials, "");  // the base settings alone: their own mistakes are named as they are
  check_axes(c.space, args_of_trials);
  const int world = c.slurm ? c.slurm->ntasks : c.launcher.empty() ? 1 : 0;
  return run_planned(c, plan(c, args_of_trials, world));
}

}  // namespace ringtrain::cli
