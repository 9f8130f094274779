// A sweep's trials run here, one after another, each a `ringtrain train` of its own (under a launcher such
// as mpirun when the sweep has one).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <ostream>
#include <thread>

#include "ringtrain/stop_request.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/run_dir.hpp"
#include "ringtrain/train/sweep.hpp"
#include "sweep_files.hpp"

namespace fs = std::filesystem;

namespace ringtrain {

namespace {

using Clock = std::chrono::steady_clock;

// Runs `command` with /bin/sh, its output into `output`, in a process group of its own, so that a Ctrl-C
// reaches the sweep alone, which passes one SIGTERM on: the trial then stops as a job does at its time limit
// (a checkpoint, if it writes them). Returns the exit code, or 128 + the signal that ended it.
int run_command(const std::string& command, const std::string& output) {
  const pid_t child = ::fork();
  if (child < 0) throw Error(std::string("cannot start a trial: fork failed"));
  if (child == 0) {
    ::setpgid(0, 0);
    const int out = ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (out < 0 || in < 0) ::_exit(127);
    ::dup2(in, 0), ::dup2(out, 1), ::dup2(out, 2);
    ::execl("/bin/sh", "sh", "-c", ("exec " + command).c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::setpgid(child, child);  // also here: before the first signal could be passed on
  bool passed_on = false;
  for (;;) {
    int status = 0;
    const pid_t done = ::waitpid(child, &status, WNOHANG);
    if (done == child) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (done < 0 && errno != EINTR) throw Error("cannot wait for a trial: waitpid failed");
    if (stop_requested() && !passed_on) {
      ::kill(-child, SIGTERM);
      passed_on = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string values_text(const Trial& t) {
  std::string text;
  for (const auto& [key, value] : t.values) text += (text.empty() ? "" : " ") + key + "=" + value;
  return text;
}

// The error line the trial printed last ("ringtrain: error: ..."), or "".
std::string last_error_line(const std::string& output) {
  const std::string text = sweep_files::read_text(output);
  const size_t at = text.rfind("ringtrain: error: ");
  if (at == std::string::npos) return "";
  const size_t end = text.find('\n', at);
  return text.substr(at + 18, end == std::string::npos ? std::string::npos : end - at - 18);
}

// How the trial ended, as its run.json says, else as its exit code and output say.
std::string outcome(const RunRecord& record, int exit_code, const std::string& output) {
  if (record.status == RunStatus::failed) return "failed: " + record.error;
  if (record.status == RunStatus::stopped) return "stopped (a checkpoint, if it writes them, was saved)";
  const std::string error = last_error_line(output);
  const std::string code = exit_code >= 128 ? "killed by signal " + std::to_string(exit_code - 128)
                                            : "exit " + std::to_string(exit_code);
  return "failed (" + code + ")" + (error.empty() ? "" : ": " + error);
}

}  // namespace

int64_t run_trials_locally(const SweepConfig& c, const std::vector<const PlannedTrial*>& trials, std::ostream& out) {
  const std::string exe = this_executable();
  int64_t finished = 0, failed = 0;
  for (const PlannedTrial* planned : trials) {
    const Trial& t = planned->trial;
    const std::string dir = (fs::path(c.out) / t.name).string();
    const std::string output = (fs::path(dir) / sweep_files::kTrialOutput).string();
    // A trial that ran before (failed, stopped, killed) continues from its checkpoint, or starts afresh.
    const bool again = read_run_record(dir).status != RunStatus::absent;
    const std::string command = (c.launcher.empty() ? "" : c.launcher + " ") + shell_word(exe) + " train --config " +
                                shell_word((fs::path(dir) / kSettingsFile).string()) + " --run-dir " +
                                shell_word(dir) + (again ? " --resume auto" : "");
    out << t.name << "  " << values_text(t) << ": " << std::flush;  // the line ends when the trial does
    const Clock::time_point started = Clock::now();
    const int exit_code = run_command(command, output);
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    const RunRecord record = read_run_record(dir);
    char took[32];
    std::snprintf(took, sizeof took, "%.1f s", seconds);
    const bool ok = exit_code == 0 && record.status == RunStatus::finished;
    out << (ok ? std::string("finished in ") + took : outcome(record, exit_code, output) + " (" + output + ")")
        << std::endl;
    ++(ok ? finished : failed);
    if (stop_requested()) {
      out << "sweep: stopped by " << stop_reason() << " after " << t.name
          << "; the same command with --resume continues it" << std::endl;
      break;
    }
  }
  const int64_t left = static_cast<int64_t>(trials.size()) - finished - failed;
  out << "sweep: " << finished << " of " << counted(static_cast<int64_t>(trials.size()), "trial") << " finished"
      << (failed ? ", " + std::to_string(failed) + " failed" : std::string())
      << (left ? ", " + std::to_string(left) + " not run" : std::string())
      << "; `ringtrain sweep --collect " << shell_word(c.out) << "` ranks them" << std::endl;
  return failed + left;
}

}  // namespace ringtrain
