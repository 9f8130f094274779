#include "ringtrain/tensor/host_allocator.hpp"

#include <sys/mman.h>

#include <cstdlib>

namespace ringtrain {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kCacheLine = 64;
}  // namespace

void* allocate_host(size_t bytes) {
  const bool huge = bytes >= kHugePage;
  const size_t align = huge ? kHugePage : kCacheLine;
  const size_t rounded = (bytes + align - 1) / align * align;  // aligned_alloc wants a multiple
  void* p = std::aligned_alloc(align, rounded == 0 ? align : rounded);
  if (!p) throw std::bad_alloc();
  if (huge) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: without THP the buffer still works
  return p;
}

void free_host(void* p, size_t) { std::free(p); }

}  // namespace ringtrain
