// The allocator behind every host tensor. Buffers of 2 MiB or more are aligned to 2 MiB and marked for
// transparent huge pages (MADV_HUGEPAGE; Debian's default THP mode is "madvise"): a 13 MB gradient then
// spans 7 pages instead of 3,200, which makes the kernel's single-copy transfers between ranks (CMA, used by
// MPI on one node) 1.6x faster at 1-16 MiB (bench/allreduce) and spares the TLB in large GEMMs. Smaller
// buffers are 64-byte aligned (one cache line, one AVX-512 vector).
#pragma once
#include <cstddef>
#include <new>
#include <string>

namespace ringtrain {

// OutOfMemory ("cannot allocate 9.4 GB of host memory: 3.1 GB available on this node") rather than a buffer
// the kernel cannot back: Linux grants more than the node has and kills the process, without a word, when it
// touches the pages. Buffers of 64 MiB or more are checked against what is available first.
void* allocate_host(size_t bytes);
void free_host(void* p, size_t bytes);
// The host memory this process may still use: /proc/meminfo's MemAvailable, or less under a cgroup limit,
// divided among the job's ranks on this node (they allocate at once, and none sees what the others will touch).
size_t available_host_bytes();
// "9.4 GB", "512 MB": for messages about memory.
std::string memory_size(size_t bytes);

template <class T>
struct HostAllocator {
  using value_type = T;
  HostAllocator() = default;
  template <class U>
  HostAllocator(const HostAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(allocate_host(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { free_host(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const HostAllocator<U>&) const { return true; }
};

}  // namespace ringtrain
