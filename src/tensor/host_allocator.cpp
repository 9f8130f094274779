#include "ringtrain/tensor/host_allocator.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <optional>
#include <string>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kCacheLine = 64;
constexpr size_t kChecked = size_t{64} << 20;  // smaller buffers are not worth a read of /proc

// A number from a one-line file (cgroup v2's memory.max, memory.current); nullopt for "max" or none.
std::optional<size_t> read_number(const char* path) {
  std::ifstream in(path);
  size_t value = 0;
  if (in >> value) return value;
  return std::nullopt;
}

// Ranks of the job on this node, as the launcher says (Open MPI, MPICH/Hydra): they build the same model at
// once, and each sees the others' memory as free until they touch it, so each may count on its share only.
size_t ranks_on_this_node() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"})
    if (const char* value = std::getenv(name)) {
      const long n = std::strtol(value, nullptr, 10);
      if (n >= 1) return static_cast<size_t>(n);
    }
  return 1;
}

[[noreturn]] void out_of_memory(size_t bytes, size_t available) {
  const size_t ranks = ranks_on_this_node();
  throw OutOfMemory("cannot allocate " + memory_size(bytes) + " of host memory: " + memory_size(available) +
                    " available to this process on this node" +
                    (ranks > 1 ? " (its share: " + std::to_string(ranks) + " ranks of the job run there)" : ""));
}
}  // namespace

std::string memory_size(size_t bytes) {
  char text[32];
  if (bytes >= (size_t{1} << 30)) std::snprintf(text, sizeof text, "%.1f GB", static_cast<double>(bytes) / 1e9);
  else std::snprintf(text, sizeof text, "%.0f MB", static_cast<double>(bytes) / 1e6);
  return text;
}

size_t available_host_bytes() {
  size_t available = std::numeric_limits<size_t>::max();
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  size_t kb = 0;
  while (meminfo >> key >> kb && key != "MemAvailable:") meminfo.ignore(256, '\n');
  if (key == "MemAvailable:") available = kb * 1024;
  const auto limit = read_number("/sys/fs/cgroup/memory.max"), used = read_number("/sys/fs/cgroup/memory.current");
  if (limit && used) available = std::min(available, *limit > *used ? *limit - *used : 0);
  return available / ranks_on_this_node();
}

void* allocate_host(size_t bytes) {
  if (bytes >= kChecked) {
    const size_t available = available_host_bytes();
    if (bytes > available) out_of_memory(bytes, available);
  }
  const bool huge = bytes >= kHugePage;
  const size_t align = huge ? kHugePage : kCacheLine;
  if (bytes > std::numeric_limits<size_t>::max() - align) out_of_memory(bytes, available_host_bytes());
  const size_t rounded = (bytes + align - 1) / align * align;  // aligned_alloc wants a multiple
  void* p = std::aligned_alloc(align, rounded == 0 ? align : rounded);
  if (!p) out_of_memory(bytes, available_host_bytes());
  if (huge) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: without THP the buffer still works
  return p;
}

void free_host(void* p, size_t) { std::free(p); }

}  // namespace ringtrain
