// --run-dir DIR: one directory per training run, holding
//   settings.ini   every option of the run, defaults included, as `key = value` lines (the CLI writes the text):
//                  `ringtrain train --config DIR/settings.ini --run-dir NEW` repeats the run
//   log.txt        rank 0's log, each line as the console shows it when it ends (a progress bar refreshed in
//                  place is written once, as last drawn)
//   metrics.csv, model.h5, checkpoints/   where --metrics, --save and --checkpoint-dir write when not given
//                  (checkpoints when --checkpoint-every or --resume asks for them)
//   run.json       the hosts and ranks, ringtrain's version and commit, the start and end, the exit status
//                  and the command line
// A directory that holds another run is refused, unless --resume continues that run.
#pragma once
#include <fstream>
#include <memory>
#include <ostream>
#include <string>

#include "ringtrain/comm/communicator.hpp"
#include "ringtrain/tensor/enum_names.hpp"
#include "ringtrain/train/callback.hpp"
#include "ringtrain/train/config.hpp"

namespace ringtrain {

inline constexpr const char* kSettingsFile = "settings.ini";
inline constexpr const char* kRunRecordFile = "run.json";
inline constexpr const char* kRunMetricsFile = "metrics.csv";

// How a run went, as run.json says ("not started" is never written: a directory without a record).
enum class RunStatus { absent, running, finished, stopped, failed };
inline constexpr EnumNames<RunStatus, 5> kRunStatusNames{{{RunStatus::absent, "not started"},
                                                          {RunStatus::running, "running"},
                                                          {RunStatus::finished, "finished"},
                                                          {RunStatus::stopped, "stopped"},
                                                          {RunStatus::failed, "failed"}}};
constexpr const auto& enum_names(RunStatus) { return kRunStatusNames; }

// What run.json says of a run: what a sweep reads of its trials.
struct RunRecord {
  RunStatus status = RunStatus::absent;
  std::string started, ended;  // ISO 8601 local time with offset
  std::string error;           // failed: the error's line
};
// The record in `dir`; status absent when there is none (or it is not ours to read).
RunRecord read_run_record(const std::string& dir);
// "finished at <time>", "failed: <error>", ...: the record in words.
std::string describe(const RunRecord& record);

// The run directory's files for the outputs `config` does not name itself.
void use_run_dir_outputs(TrainConfig& config);

// ringtrain's version, and the git commit it was built from ("" when the build did not know it).
const char* ringtrain_version();
const char* ringtrain_commit();

class RunDir {
 public:
  // Collective. Without config.run_dir.dir, nothing. Else rank 0 checks the directory (one it can write,
  // that holds no other run unless config.resume continues it), creates it, writes settings.ini and
  // run.json ("running") and opens log.txt (appended to when resuming); a failure is every rank's error.
  // `job_id`: the job's id, as "%j" gives it.
  RunDir(const TrainConfig& config, Communicator& world, const std::string& job_id);
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;
  ~RunDir();
  // Where rank 0 logs: `console` and log.txt together (`console` alone without a run directory).
  std::ostream& log(std::ostream& console);
  // run.json: finished, or stopped (a signal ended it after a checkpoint), exit code 0.
  void finish(const TrainResult& result);
  // run.json: failed, with the error, exit code 1. Never throws: it runs while an error leaves.
  void fail(const std::string& error) noexcept;

 private:
  struct Record;
  void write_record(RunStatus status, int exit_code, const std::string& error, int64_t steps);

  std::string dir_;  // "" = none, or not rank 0
  std::unique_ptr<Record> record_;
  std::ofstream log_file_;
  std::unique_ptr<std::streambuf> tee_;
  std::unique_ptr<std::ostream> log_;
};

}  // namespace ringtrain
