#include "ringtrain/train/run_dir.hpp"

#include <ctime>
#include <filesystem>
#include <optional>
#include <sstream>

#include "ringtrain/comm/agreement.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/text.hpp"
#include "ringtrain/train/output_file.hpp"

namespace fs = std::filesystem;

namespace ringtrain {

namespace {

constexpr const char* kLogFile = "log.txt";
constexpr const char* kModelFile = "model.h5";
constexpr const char* kCheckpointDir = "checkpoints";

std::string in_dir(const std::string& dir, const char* name) { return (fs::path(dir) / name).string(); }

std::string now_iso8601() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  ::localtime_r(&now, &local);
  char text[40];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S%z", &local);
  return text;
}

// The value of "key": "..." in run.json as write_record writes it (one key per line), unescaped; "" when absent.
std::string json_field(const std::string& json, const std::string& key) {
  const std::string opening = json_string(key) + ": \"";
  const size_t start = json.find(opening);
  if (start == std::string::npos) return "";
  std::string value;
  for (size_t i = start + opening.size(); i < json.size() && json[i] != '"'; ++i) {
    if (json[i] != '\\' || i + 1 == json.size()) {
      value += json[i];
    } else if (json[++i] == 'u') {  // \u00XX: a control byte
      value += static_cast<char>(std::strtol(json.substr(i + 1, 4).c_str(), nullptr, 16));
      i += 4;
    } else {
      value += json[i];
    }
  }
  return value;
}

// The console and the log file: the console gets every byte, the file each line as it ends, as the terminal
// shows it then (a line refreshed in place, a progress bar's "\r", is written once, as it was last drawn).
class TeeBuffer final : public std::streambuf {
 public:
  TeeBuffer(std::streambuf* console, std::streambuf* file) : console_(console), file_(file) {}
  ~TeeBuffer() override {
    if (!line_.empty()) file_->sputn(line_.data(), static_cast<std::streamsize>(line_.size()));
  }

 protected:
  int overflow(int c) override {
    if (c == traits_type::eof()) return traits_type::not_eof(c);
    const auto ch = traits_type::to_char_type(c);
    if (console_->sputc(ch) == traits_type::eof()) return traits_type::eof();
    to_file(ch);
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    const std::streamsize written = console_->sputn(s, n);
    for (std::streamsize i = 0; i < written; ++i) to_file(s[i]);
    return written;
  }
  int sync() override { return console_->pubsync() == 0 && file_->pubsync() == 0 ? 0 : -1; }

 private:
  void to_file(char ch) {
    if (ch == '\r') {
      line_.clear();
      return;
    }
    line_ += ch;
    if (ch != '\n') return;
    file_->sputn(line_.data(), static_cast<std::streamsize>(line_.size()));
    line_.clear();
  }

  std::streambuf* console_;
  std::streambuf* file_;
  std::string line_;  // the line under way
};

// Rank 0, before anything is written: a directory that can be made and written, holding no other run unless
// this one continues it.
void check_run_dir(const TrainConfig& c) {
  const std::string& dir = c.run_dir.dir;
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) throw Error("--run-dir '" + dir + "' is not a directory");
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create --run-dir '" + dir + "': " + ec.message());
  check_writable_dir(dir, "cannot write to --run-dir '" + dir + "': ");
  if (c.resume.kind != ResumeFrom::nothing) return;
  const RunRecord earlier = read_run_record(dir);
  const std::string advice = ": give another directory, or add --resume auto to continue that run";
  if (earlier.status != RunStatus::absent && earlier.status != RunStatus::failed)
    throw Error("--run-dir '" + dir + "' holds a run that " + describe(earlier) + advice);
  for (const char* output : {kRunMetricsFile, kModelFile})
    if (fs::exists(in_dir(dir, output), ec))
      throw Error("--run-dir '" + dir + "' holds an earlier run's " + output + advice);
}

// "hosts": each host and the ranks on it, in rank order.
std::string hosts_json(const std::vector<std::string>& host_of_rank) {
  std::vector<std::pair<std::string, std::string>> hosts;  // name, ranks
  for (size_t rank = 0; rank < host_of_rank.size(); ++rank) {
    auto it = std::find_if(hosts.begin(), hosts.end(), [&](const auto& h) { return h.first == host_of_rank[rank]; });
    if (it == hosts.end()) it = hosts.insert(hosts.end(), {host_of_rank[rank], ""});
    it->second += (it->second.empty() ? "" : ", ") + std::to_string(rank);
  }
  std::string json;
  for (const auto& [name, ranks] : hosts)
    json += std::string(json.empty() ? "" : ", ") + "{\"host\": " + json_string(name) + ", \"ranks\": [" + ranks + "]}";
  return "[" + json + "]";
}

}  // namespace

RunRecord read_run_record(const std::string& dir) {
  std::ifstream in(in_dir(dir, kRunRecordFile));
  RunRecord r;
  if (!in) return r;
  std::ostringstream text;
  text << in.rdbuf();
  const std::string json = text.str();
  const std::optional<RunStatus> status = enum_from_name<RunStatus>(json_field(json, "status"));
  if (!status) return r;
  r.status = *status;
  r.started = json_field(json, "started");
  r.ended = json_field(json, "ended");
  r.error = json_field(json, "error");
  return r;
}

std::string describe(const RunRecord& r) {
  switch (r.status) {
    case RunStatus::absent: return "has not started";
    case RunStatus::running: return "started at " + r.started + " and has not ended (it runs, or was killed)";
    case RunStatus::finished: return "finished at " + r.ended;
    case RunStatus::stopped: return "was stopped at " + r.ended + " (a signal, after a checkpoint)";
    case RunStatus::failed: return "failed: " + r.error;
  }
  return "";
}

void use_run_dir_outputs(TrainConfig& c) {
  const std::string& dir = c.run_dir.dir;
  if (dir.empty()) return;
  if (c.metrics_csv.empty()) c.metrics_csv = in_dir(dir, kRunMetricsFile);
  if (c.save_model.empty()) c.save_model = in_dir(dir, kModelFile);
  if (c.checkpoint_dir.empty() && (c.checkpoint_every > 0 || c.resume.kind != ResumeFrom::nothing))
    c.checkpoint_dir = in_dir(dir, kCheckpointDir);
}

// What run.json says at every write: the run's start and where it ran.
struct RunDir::Record {
  std::string started, command_line, working_directory, job_id, hosts;
  int world_size = 1;
};

RunDir::RunDir(const TrainConfig& c, Communicator& world, const std::string& job_id) {
  if (c.run_dir.dir.empty()) return;
  const std::vector<std::string> hosts = allgather_strings(world, host_name());
  std::string failure;
  if (world.rank() == 0) {
    try {
      check_run_dir(c);
      dir_ = c.run_dir.dir;
      write_text_atomically(in_dir(dir_, kSettingsFile), [&](std::ostream& out) { out << c.run_dir.settings; });
      std::error_code ec;
      record_.reset(new Record{now_iso8601(), c.run_dir.command_line, fs::current_path(ec).string(), job_id,
                               hosts_json(hosts), world.size()});
      write_record(RunStatus::running, -1, "", -1);
      // A resumed run's log goes on under the lines of the run it continues.
      log_file_.open(in_dir(dir_, kLogFile), c.resume.kind != ResumeFrom::nothing ? std::ios::app : std::ios::trunc);
      if (!log_file_) throw Error("cannot write '" + in_dir(dir_, kLogFile) + "'");
    } catch (const std::exception& e) {
      failure = e.what();
      dir_.clear();
    }
  }
  raise_if_any_failed(world, failure);
}

RunDir::~RunDir() = default;

std::ostream& RunDir::log(std::ostream& console) {
  if (dir_.empty()) return console;
  if (!log_) {
    tee_ = std::make_unique<TeeBuffer>(console.rdbuf(), log_file_.rdbuf());
    log_ = std::make_unique<std::ostream>(tee_.get());
  }
  return *log_;
}

void RunDir::finish(const TrainResult& result) {
  if (dir_.empty()) return;
  if (log_) log_->flush();
  write_record(result.stopped_early ? RunStatus::stopped : RunStatus::finished, 0, "", result.steps);
}

void RunDir::fail(const std::string& error) noexcept {
  if (dir_.empty()) return;
  try {
    if (log_) log_->flush();
    write_record(RunStatus::failed, 1, error, -1);
  } catch (...) {  // the error that is leaving is the one to report
  }
}

void RunDir::write_record(RunStatus status, int exit_code, const std::string& error, int64_t steps) {
  const Record& r = *record_;
  const bool ended = status != RunStatus::running;
  std::ostringstream json;
  json << "{\n"
       << "  \"status\": " << json_string(name_of(status)) << ",\n";
  if (ended) json << "  \"exit_code\": " << exit_code << ",\n";
  if (!error.empty()) json << "  \"error\": " << json_string(error) << ",\n";
  json << "  \"started\": " << json_string(r.started) << ",\n";
  if (ended) json << "  \"ended\": " << json_string(now_iso8601()) << ",\n";
  if (steps >= 0) json << "  \"steps\": " << steps << ",\n";
  json << "  \"command_line\": " << json_string(r.command_line) << ",\n"
       << "  \"working_directory\": " << json_string(r.working_directory) << ",\n"
       << "  \"job_id\": " << json_string(r.job_id) << ",\n"
       << "  \"world_size\": " << r.world_size << ",\n"
       << "  \"hosts\": " << r.hosts << ",\n"
       << "  \"ringtrain_version\": " << json_string(ringtrain_version()) << ",\n"
       << "  \"git_commit\": " << json_string(ringtrain_commit()) << "\n"
       << "}\n";
  write_text_atomically(in_dir(dir_, kRunRecordFile), [&](std::ostream& out) { out << json.str(); });
}

}  // namespace ringtrain
