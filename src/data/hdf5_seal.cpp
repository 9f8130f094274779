// HDF5 files built in memory and written by us (model files, checkpoints, shards), and the seal of a model
// file or checkpoint: a CRC-32 of the whole file, kept in the HDF5 user block at its start.
// In memory, because HDF5 meeting a full disk is left with a file it can neither flush nor close, and crashes
// at exit; our own write says which file and why. The seal, because Fletcher-32 guards each dataset's data but
// not the file's metadata (object headers, attributes, the heap of variable-length strings), and the HDF5
// library trusts that metadata: a single changed byte there can crash it or loop for ever. The seal is
// checked before the library sees the file, so a damaged file is an error naming it, never a crash or a hang.
// HDF5 skips the user block, so h5py and h5dump read sealed files as usual.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <zlib.h>

#include "ringtrain/data/hdf5.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain::h5 {

namespace {

constexpr hsize_t kSealBytes = 512;  // the smallest user block HDF5 allows
constexpr char kSealMagic[] = "ringtrain-seal-1";
constexpr unsigned char kHdf5Signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

File open_stdio(const std::string& path, const char* mode) {
  File f(std::fopen(path.c_str(), mode), &std::fclose);
  if (!f) throw Error("cannot open '" + path + "': " + std::strerror(errno));
  return f;
}

struct Body {
  uint32_t crc = 0;
  uint64_t bytes = 0;
};

// zlib's CRC-32 continued over `n` bytes (its length argument is 32-bit: larger spans go in pieces).
uLong add_crc(uLong crc, const char* data, size_t n) {
  for (size_t at = 0; at < n; at += size_t{1} << 30)
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data + at), static_cast<uInt>(std::min(n - at, size_t{1} << 30)));
  return crc;
}

// CRC-32 of everything after the user block.
Body checksum_body(std::FILE* f, const std::string& path) {
  if (std::fseek(f, static_cast<long>(kSealBytes), SEEK_SET) != 0) throw Error("cannot read '" + path + "'");
  Body body;
  uLong crc = crc32(0L, Z_NULL, 0);
  std::vector<char> buffer(1 << 20);
  while (const size_t n = std::fread(buffer.data(), 1, buffer.size(), f)) {
    crc = add_crc(crc, buffer.data(), n);
    body.bytes += n;
  }
  if (std::ferror(f)) throw Error("cannot read '" + path + "': " + std::strerror(errno));
  body.crc = static_cast<uint32_t>(crc);
  return body;
}

std::string seal_text(const Body& body) {
  char text[96];
  std::snprintf(text, sizeof text, "%s crc32=%08" PRIx32 " bytes=%" PRIu64 "\n", kSealMagic, body.crc, body.bytes);
  return text;
}

}  // namespace

std::vector<char> file_image(const std::function<void(hid_t file)>& fill, bool sealed) {
  // In memory (the core driver, no backing file): HDF5 never meets a full disk, whose failed flush leaves it
  // a file it can neither close nor forget (the library then crashes at exit). write_image reports it.
  H5Id fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose), fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  if (!fcpl.valid() || !fapl.valid() || (sealed && H5Pset_userblock(fcpl.get(), kSealBytes) < 0) ||
      H5Pset_fapl_core(fapl.get(), size_t{64} << 20, 0) < 0)
    throw Error("cannot set up an HDF5 file in memory");
  // The image HDF5 gives back leaves out the user block, which the superblock counts on: the seal goes before.
  const size_t head = sealed ? kSealBytes : 0;
  std::vector<char> image;
  {
    const hid_t id = H5Fcreate("ringtrain-image.h5", H5F_ACC_TRUNC, fcpl.get(), fapl.get());
    if (id < 0) throw Error("cannot create an HDF5 file in memory");
    H5Id file(id, H5Fclose);
    fill(file.get());
    if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0) throw Error("cannot flush an HDF5 file in memory");
    const ssize_t size = H5Fget_file_image(file.get(), nullptr, 0);
    if (size <= 0) throw Error("cannot read back an HDF5 file from memory");
    image.resize(head + static_cast<size_t>(size));
    if (H5Fget_file_image(file.get(), image.data() + head, static_cast<size_t>(size)) != size)
      throw Error("cannot read back an HDF5 file from memory");
  }
  if (!sealed) return image;
  Body body;
  body.bytes = image.size() - kSealBytes;
  body.crc = static_cast<uint32_t>(add_crc(crc32(0L, Z_NULL, 0), image.data() + kSealBytes, body.bytes));
  const std::string text = seal_text(body);
  std::copy(text.begin(), text.end(), image.begin());  // the rest of the user block stays zero
  return image;
}

void write_image(const std::string& path, const std::vector<char>& image, const std::string& name) {
  const std::string cannot = "cannot write '" + name + "': ";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(cannot + std::strerror(errno));
  for (size_t done = 0; done < image.size();) {
    const ssize_t n = ::write(fd, image.data() + done, image.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = n < 0 ? errno : ENOSPC;
      ::close(fd);
      throw Error(cannot + std::strerror(error));
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) throw Error(cannot + std::strerror(errno));
}

bool check_seal(const std::string& path) {
  File f = open_stdio(path, "rb");
  char head[kSealBytes] = {};
  const size_t got = std::fread(head, 1, sizeof head, f.get());
  if (got >= sizeof kHdf5Signature && std::memcmp(head, kHdf5Signature, sizeof kHdf5Signature) == 0)
    return false;  // no user block: a file written before seals, guarded by its datasets' checksums only
  const std::string damaged = "'" + path + "' is damaged: ";
  if (got < kSealBytes || std::strncmp(head, kSealMagic, sizeof kSealMagic - 1) != 0)
    throw Error(damaged + "its first bytes are neither an HDF5 signature nor a ringtrain seal");
  char magic[32] = {};
  unsigned crc = 0;
  unsigned long long bytes = 0;
  if (std::sscanf(head, "%31s crc32=%8x bytes=%llu", magic, &crc, &bytes) != 3)
    throw Error(damaged + "its seal (the checksum in its first bytes) is unreadable");
  const Body body = checksum_body(f.get(), path);
  if (body.bytes != bytes)
    throw Error(damaged + "it holds " + std::to_string(body.bytes + kSealBytes) + " bytes, but was written with " +
                std::to_string(bytes + kSealBytes) + (body.bytes < bytes ? " (truncated)" : ""));
  if (body.crc != crc) throw Error(damaged + "its contents do not match the checksum written with it");
  return true;
}

H5Id open_sealed_file(const std::string& path, bool* sealed) {
  check_regular_file(path);
  const bool has_seal = check_seal(path);
  if (sealed) *sealed = has_seal;
  return open_file(path);
}

}  // namespace ringtrain::h5
