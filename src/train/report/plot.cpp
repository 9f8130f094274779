// The plots are matplotlib's, drawn by a script of ours in a child process: ringtrain links no plotting
// library, and a machine without matplotlib still gets the report's numbers.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "ringtrain/train/report/report.hpp"

extern char** environ;

namespace fs = std::filesystem;

namespace ringtrain {

namespace {

constexpr const char* kPython = "/usr/bin/python3";

// <prefix>/bin/ringtrain and <prefix>/share/ringtrain/plot_report.py in an installation; the build tree has
// the same layout (build/src/ringtrain, build/share/ringtrain/), which CMake copies the script into.
fs::path plot_script() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return exe.parent_path().parent_path() / "share" / "ringtrain" / "plot_report.py";
}

class Pipe {
 public:
  Pipe() {
    if (::pipe(fds_) != 0) fds_[0] = fds_[1] = -1;
  }
  ~Pipe() {
    close_write();
    if (fds_[0] >= 0) ::close(fds_[0]);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  bool ok() const { return fds_[0] >= 0; }
  int read_end() const { return fds_[0]; }
  int write_end() const { return fds_[1]; }
  void close_write() {
    if (fds_[1] >= 0) ::close(fds_[1]);
    fds_[1] = -1;
  }

 private:
  int fds_[2];
};

// Runs the script with `dir`; its stdout and stderr together into `output`. Returns its exit status, or -1
// when it could not start (errno set).
int run_script(const fs::path& script, const std::string& dir, std::string& output) {
  Pipe pipe;
  if (!pipe.ok()) return -1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe.write_end(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe.write_end(), STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe.read_end());
  const std::string script_path = script.string();
  char* argv[] = {const_cast<char*>(kPython), const_cast<char*>(script_path.c_str()), const_cast<char*>(dir.c_str()),
                  nullptr};
  pid_t child = -1;
  const int spawned = posix_spawn(&child, kPython, &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  pipe.close_write();
  if (spawned != 0) {
    errno = spawned;
    return -1;
  }
  char buffer[4096];
  for (ssize_t n; (n = ::read(pipe.read_end(), buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    output.append(buffer, static_cast<size_t>(n));
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string last_line(const std::string& text) {
  const size_t end = text.find_last_not_of("\r\n");
  if (end == std::string::npos) return "";
  const size_t begin = text.rfind('\n', end);
  return text.substr(begin == std::string::npos ? 0 : begin + 1, end - (begin == std::string::npos ? 0 : begin + 1) + 1);
}

}  // namespace

std::string plot_report(const std::string& dir) {
  const fs::path script = plot_script();
  std::error_code ec;
  if (!fs::is_regular_file(script, ec))
    return "plots skipped: the plotting script is not at " + script.string() + " (the report's JSON and CSV stand)";
  if (::access(kPython, X_OK) != 0)
    return std::string("plots skipped: no ") + kPython + " to run the plotting script (the report's JSON and CSV stand)";
  std::string output;
  const int status = run_script(script, dir, output);
  if (status < 0) return std::string("plots skipped: cannot start ") + kPython + ": " + std::strerror(errno);
  const std::string said = last_line(output);
  if (status != 0)
    return "plots skipped: " + (said.empty() ? "the plotting script exited with status " + std::to_string(status) : said);
  return said;
}

}  // namespace ringtrain
