#include "ringtrain/data/stage.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace fs = std::filesystem;

namespace {

constexpr const char* kManifest = ".ringtrain-stage";
constexpr size_t kChunk = 4 << 20;

// An open file descriptor, closed on every path.
class Fd {
 public:
  Fd(const std::string& path, int flags, mode_t mode = 0644) : fd_(::open(path.c_str(), flags, mode)) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_;
};

std::string why() { return std::strerror(errno); }

// What the manifest remembers of one staged copy: the source as it was copied, and the copy's checksum.
struct Entry {
  uintmax_t size = 0;
  int64_t mtime_ns = 0;
  uint32_t crc = 0;
};

std::map<std::string, Entry> read_manifest(const fs::path& dir) {
  std::map<std::string, Entry> entries;
  std::ifstream in(dir / kManifest);
  std::string name;
  Entry e;
  while (in >> std::quoted(name) >> e.size >> e.mtime_ns >> e.crc) entries[name] = e;
  return entries;
}

void write_manifest(const fs::path& dir, const std::map<std::string, Entry>& entries) {
  const fs::path tmp = dir / (std::string(kManifest) + ".tmp");
  {
    std::ofstream out(tmp);
    for (const auto& [name, e] : entries) out << std::quoted(name) << ' ' << e.size << ' ' << e.mtime_ns << ' ' << e.crc << '\n';
    if (!out) throw Error("cannot write the staging manifest in '" + dir.string() + "'");
  }
  fs::rename(tmp, dir / kManifest);
}

int64_t mtime_ns(const fs::path& p) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(fs::last_write_time(p).time_since_epoch()).count();
}

// Copies src to dst (a temporary name), returning the CRC-32 of the bytes read; synced before returning.
uint32_t copy_file(const std::string& src, const std::string& dst) {
  Fd in(src, O_RDONLY);
  if (!in) throw Error("cannot stage '" + src + "': " + why());
  Fd out(dst, O_WRONLY | O_CREAT | O_TRUNC);
  if (!out) throw Error("cannot stage '" + src + "' to '" + dst + "': " + why());
  std::vector<unsigned char> buf(kChunk);
  uLong crc = crc32(0L, Z_NULL, 0);
  for (;;) {
    const ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0) throw Error("cannot stage '" + src + "': read failed: " + why());
    if (n == 0) break;
    crc = crc32(crc, buf.data(), static_cast<uInt>(n));
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(out.get(), buf.data() + done, static_cast<size_t>(n - done));
      if (w < 0) throw Error("cannot stage '" + src + "' to '" + dst + "': write failed: " + why());
      done += w;
    }
  }
  if (::fsync(out.get()) != 0) throw Error("cannot stage '" + src + "' to '" + dst + "': fsync failed: " + why());
  return static_cast<uint32_t>(crc);
}

}  // namespace

uint32_t file_crc32(const std::string& path) {
  Fd in(path, O_RDONLY);
  if (!in) throw Error("cannot read '" + path + "': " + why());
  std::vector<unsigned char> buf(kChunk);
  uLong crc = crc32(0L, Z_NULL, 0);
  for (;;) {
    const ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0) throw Error("cannot read '" + path + "': " + why());
    if (n == 0) return static_cast<uint32_t>(crc);
    crc = crc32(crc, buf.data(), static_cast<uInt>(n));
  }
}

StageReport stage_files(const std::vector<std::string>& sources, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create the staging directory '" + dir + "': " + ec.message());
  // Runs that stage into one directory at once (job steps started side by side) take turns: they would
  // write the same temporary files and manifest. The later one then finds the copies there.
  const std::string lock_path = (fs::path(dir) / (std::string(kManifest) + ".lock")).string();
  Fd lock(lock_path, O_RDWR | O_CREAT | O_CLOEXEC);
  if (!lock) throw Error("cannot create '" + lock_path + "': " + why());
  while (::flock(lock.get(), LOCK_EX) != 0 && errno == EINTR) {
  }
  std::map<std::string, Entry> manifest = read_manifest(dir);
  StageReport report;
  for (const std::string& source : sources) {
    const fs::path local = fs::path(dir) / fs::path(source).filename();
    const std::string name = local.filename().string();
    if (!fs::exists(source, ec)) throw Error("cannot stage '" + source + "': no such file");
    Entry now{fs::file_size(source), mtime_ns(source), 0};
    const auto known = manifest.find(name);
    const bool there = fs::exists(local, ec);
    // Identical: the source has not changed since it was copied, and the copy still has its checksum.
    if (there && known != manifest.end() && known->second.size == now.size && known->second.mtime_ns == now.mtime_ns &&
        fs::file_size(local) == now.size && file_crc32(local.string()) == known->second.crc) {
      ++report.kept;
      report.local.push_back(local.string());
      continue;
    }
    const std::string tmp = local.string() + ".staging";
    now.crc = copy_file(source, tmp);
    if (fs::file_size(tmp) != now.size || file_crc32(tmp) != now.crc) {
      fs::remove(tmp, ec);
      throw Error("the staged copy of '" + source + "' in '" + dir + "' does not match its source (size or checksum)");
    }
    fs::rename(tmp, local);
    ++report.copied;
    if (there) ++report.replaced;
    report.bytes_copied += static_cast<int64_t>(now.size);
    manifest[name] = now;
    write_manifest(dir, manifest);
    report.local.push_back(local.string());
  }
  return report;
}

void remove_staged_files(const std::string& dir) {
  std::error_code ignored;
  for (const auto& [name, entry] : read_manifest(dir))
    if (name.find('/') == std::string::npos && name != "." && name != "..")  // a file of this directory only
      fs::remove(fs::path(dir) / name, ignored);
  for (const std::string suffix : {"", ".lock", ".tmp"}) fs::remove(fs::path(dir) / (kManifest + suffix), ignored);
  fs::remove(dir, ignored);  // only when empty
}

}  // namespace ringtrain
