// A sweep as a SLURM job array: one array task per trial, each task as many ranks as --ntasks asks.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/output_file.hpp"
#include "ringtrain/train/run_dir.hpp"
#include "ringtrain/train/sweep.hpp"
#include "sweep_files.hpp"

namespace fs = std::filesystem;

namespace ringtrain {

namespace {

// "0-5", or for the trials a resumed sweep has left "1,3-4": sbatch --array's syntax.
std::string array_indices(const std::vector<const PlannedTrial*>& trials) {
  std::string text;
  for (size_t i = 0; i < trials.size();) {
    size_t j = i;
    while (j + 1 < trials.size() && trials[j + 1]->trial.index == trials[j]->trial.index + 1) ++j;
    if (!text.empty()) text += ',';
    text += std::to_string(trials[i]->trial.index);
    if (j > i) text += '-' + std::to_string(trials[j]->trial.index);
    i = j + 1;
  }
  return text;
}

// In SLURM's file name patterns "%" starts a field ("%A", "%3a"): a "%" of the path itself is "%%".
std::string slurm_pattern_text(const std::string& path) {
  std::string text;
  for (const char c : path) text += c == '%' ? std::string("%%") : std::string(1, c);
  return text;
}

}  // namespace

std::string write_slurm_array(const SweepConfig& c, const std::vector<const PlannedTrial*>& trials) {
  const SlurmArray& s = *c.slurm;
  const std::string out = fs::absolute(c.out).lexically_normal().string();
  const std::string first = trials.front()->trial.name;
  const std::string digits = std::to_string(first.size() - std::string("trial-").size());  // trial-000: 3
  std::ostringstream script;
  script << "#!/bin/bash\n"
         << "# A ringtrain sweep as a SLURM job array, written by `ringtrain sweep --slurm`: one array task per\n"
         << "# trial (" << sweep_files::kTrials << " lists them), each training the trial's run directory with its\n"
         << "# settings.ini. --resume auto: a requeued task continues from its checkpoint.\n"
         << "# Submit it with: sbatch " << shell_word(out + "/" + sweep_files::kScript) << "\n"
         << "#SBATCH --job-name=ringtrain-sweep\n"
         << "#SBATCH --array=" << array_indices(trials) << "\n"
         << "#SBATCH --ntasks=" << s.ntasks << "\n";
  if (s.nodes > 0) script << "#SBATCH --nodes=" << s.nodes << "\n";
  script << "#SBATCH --cpus-per-task=" << s.cpus_per_task << "\n";
  if (!s.time.empty()) script << "#SBATCH --time=" << s.time << "\n";
  for (const std::string& option : s.options) script << "#SBATCH --" << option << "\n";
  // The log of task 7 of job 1234: trial-007/slurm-1234_7.out.
  script << "#SBATCH --output=" << slurm_pattern_text(out) << "/trial-%" << digits << "a/slurm-%A_%a.out\n"
         << "set -euo pipefail\n"
         << "# Where the sweep was made: relative paths in the settings (--data) mean what they meant there.\n"
         << "cd " << shell_word(fs::current_path().string()) << "\n"
         << "trial=" << shell_word(out) << "/$(printf 'trial-%0" << digits << "d' \"$SLURM_ARRAY_TASK_ID\")\n"
         << "echo \"$trial: task $SLURM_ARRAY_TASK_ID of array job $SLURM_ARRAY_JOB_ID, $SLURM_NTASKS rank(s) on "
            "$SLURM_JOB_NODELIST\"\n"
         << "# --mpi=pmix: Open MPI joins the ranks srun starts (without it each task would be a one-rank job).\n"
         << "srun --mpi=pmix " << shell_word(this_executable())
         << " train --config \"$trial/settings.ini\" --run-dir \"$trial\" --resume auto\n";
  const std::string path = out + "/" + sweep_files::kScript;
  write_text_atomically(path, [&](std::ostream& file) { file << script.str(); });
  fs::permissions(path, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add);
  return path;
}

std::string submit_slurm_array(const std::string& script) {
  const std::string command = "sbatch --parsable " + shell_word(script) + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) throw Error("cannot run sbatch");
  std::string said;
  char buffer[256];
  while (std::fgets(buffer, sizeof buffer, pipe.get())) said += buffer;
  const int status = ::pclose(pipe.release());
  while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) said.pop_back();
  if (status != 0) throw Error("sbatch refused " + script + ": " + (said.empty() ? "no reason given" : said));
  return said.substr(0, said.find(';'));  // "<job id>;<cluster>" on a federation
}

}  // namespace ringtrain
