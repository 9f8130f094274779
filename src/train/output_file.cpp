#include "ringtrain/train/output_file.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "ringtrain/tensor/error.hpp"

namespace fs = std::filesystem;

namespace ringtrain {

namespace {

void fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) throw Error("cannot reopen '" + path + "' to sync it: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) throw Error("cannot sync '" + path + "' to disk: " + std::strerror(error));
}

std::string temporary_for(const std::string& path) { return path + ".tmp." + std::to_string(::getpid()); }

bool same_file(const fs::path& a, const std::string& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec) && !ec;
}

// Where a write to `path` lands: through symbolic links to the file they name, so that a link is kept and its
// target replaced (as `cp` and `>` do), not the link replaced by a file.
fs::path resolved(const std::string& path) {
  std::error_code ec;
  const fs::path target = fs::weakly_canonical(fs::absolute(path), ec);
  return ec ? fs::absolute(path) : target;
}

}  // namespace

void check_writable_dir(const std::string& dir, const std::string& cannot) {
  // access(W_OK) says yes to root for any directory, /proc and /sys among them: only making a file proves it.
  const std::string probe = (fs::path(dir) / ".ringtrain-probe.tmp.").string() + std::to_string(::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno != EEXIST)
    throw Error(cannot + "cannot create a file in '" + dir + "' (" + std::strerror(errno) + ")");
  if (fd >= 0) ::close(fd), ::unlink(probe.c_str());
}

void check_output(const std::string& path, const std::string& what, const std::vector<std::string>& inputs) {
  const std::string cannot = "cannot write " + what + " to '" + path + "': ";
  const fs::path target = resolved(path);
  std::error_code ec;
  const fs::file_status status = fs::status(target, ec);
  if (fs::is_directory(status)) throw Error(cannot + "it is a directory");
  if (fs::exists(status) && !fs::is_regular_file(status))
    throw Error(cannot + "it is not a regular file (a device, a pipe or a socket), which ringtrain does not replace");
  if (fs::exists(status))
    for (const std::string& input : inputs)
      if (same_file(target, input)) throw Error(cannot + "it is one of this run's inputs");
  const fs::path dir = target.parent_path();
  if (!fs::is_directory(dir, ec)) throw Error(cannot + "directory '" + dir.string() + "' does not exist");
  check_writable_dir(dir.string(), cannot);
}

void write_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& write) {
  const fs::path target = resolved(path);
  const std::string tmp = temporary_for(target.string());
  try {
    write(tmp);
    fsync_path(tmp, O_RDONLY);
    std::error_code ec;
    fs::rename(tmp, target, ec);
    if (ec) throw Error("cannot move '" + tmp + "' into place at '" + path + "': " + ec.message());
    // The rename itself is durable only once the directory is.
    fsync_path(target.parent_path().string(), O_RDONLY | O_DIRECTORY);
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

void write_text_atomically(const std::string& path, const std::function<void(std::ostream&)>& write) {
  write_atomically(path, [&](const std::string& tmp) {
    errno = 0;
    std::ofstream out(tmp, std::ios::trunc);
    write(out);  // also into a stream that failed to open: a writer may be collective (the timeline)
    out.flush();
    if (!out)
      throw Error("cannot write '" + path + "': " + (errno ? std::strerror(errno) : "the write failed") +
                  " (the previous file, if any, is kept)");
  });
}

void remove_stale_temporaries(const std::string& dir, const std::string& prefix) {
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir.empty() ? "." : dir, ec)) {
    const std::string name = entry.path().filename().string();
    const size_t tmp = name.rfind(".tmp.");
    if (name.rfind(prefix, 0) != 0 || tmp == std::string::npos || tmp < prefix.size()) continue;
    const std::string pid = name.substr(tmp + 5);
    if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    // A run still writing it (on this node) keeps its file; one no longer running left it behind.
    if (::kill(static_cast<pid_t>(std::stol(pid)), 0) == 0 || errno != ESRCH) continue;
    std::error_code ignored;
    fs::remove(entry.path(), ignored);
  }
}

void remove_stale_temporaries_of(const std::string& path) {
  const fs::path target = resolved(path);
  remove_stale_temporaries(target.parent_path().string(), target.filename().string());
}

}  // namespace ringtrain
