// The caching allocator behind DeviceBuffer: BlockCache's rules (block_cache.hpp) over cudaMalloc and CUDA
// events.
#include "ringtrain/tensor/cuda_allocator.hpp"

#include <mutex>
#include <optional>
#include <string>

#include "ringtrain/tensor/block_cache.hpp"
#include "ringtrain/tensor/cuda_context.hpp"
#include "ringtrain/tensor/cuda_events.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

// Small requests round to 512 bytes, large ones to whole 2 MiB: sizes then repeat exactly from step to
// step and every freed block finds its next owner.
size_t round_request(size_t bytes) {
  constexpr size_t kSmall = 512, kLarge = size_t{2} << 20;
  if (bytes < (size_t{1} << 20)) return (bytes + kSmall - 1) / kSmall * kSmall;
  return (bytes + kLarge - 1) / kLarge * kLarge;
}

// BlockCache's events: CUDA events from the pool.
struct CudaEvents {
  using Stream = cudaStream_t;
  using Event = cudaEvent_t;

  // Called while freeing, which must not throw: a failure is answered with nullopt.
  std::optional<cudaEvent_t> record(cudaStream_t stream) noexcept {
    try {
      cuda::context();  // binds the freeing thread to our GPU (no stray context on GPU 0)
      const cudaEvent_t e = cuda::event_pool().acquire();
      if (cudaEventRecord(e, stream) == cudaSuccess) return e;
      cudaGetLastError();
      cuda::event_pool().recycle(e);
    } catch (...) {
    }
    return std::nullopt;
  }
  bool done(cudaEvent_t event) { return cuda::event_done(event); }
  void recycle(cudaEvent_t event) { cuda::event_pool().recycle(event); }
};

class CachingAllocator {
 public:
  void* allocate(size_t bytes) {
    const size_t size = round_request(bytes);
    const cudaStream_t stream = cuda::context().compute();  // also binds this thread to the device
    std::lock_guard lock(mutex_);
    if (void* p = cache_.take(size, stream)) return p;
    void* p = cuda_malloc(size);
    cache_.add(p, size, stream);
    return p;
  }

  void release(void* p) {
    std::lock_guard lock(mutex_);
    cache_.release(p);
  }

  void record_use(const void* p, cudaStream_t stream) {
    std::optional<cudaStream_t> wait_for;
    {
      std::lock_guard lock(mutex_);
      wait_for = cache_.record_use(p, stream);
    }
    if (wait_for) cuda::stream_wait(stream, *wait_for);
  }

  void retire(cudaStream_t stream) {
    std::lock_guard lock(mutex_);
    cache_.retire(stream);
  }

  DeviceMemoryStats stats() {
    std::lock_guard lock(mutex_);
    return cache_.stats();
  }

 private:
  // Called with the mutex held. When the GPU is full, the cached blocks go back to CUDA and the allocation
  // is tried once more; queued work may still use them (pending blocks, or blocks freed in queue order), so
  // the host waits for the whole device first. Rare, and never in a step like one that has run before.
  void* cuda_malloc(size_t size) {
    void* p = nullptr;
    if (cudaMalloc(&p, size) == cudaSuccess) return p;
    cudaGetLastError();
    cudaDeviceSynchronize();
    for (void* block : cache_.drain()) cudaFree(block);
    if (cudaMalloc(&p, size) != cudaSuccess) {
      cudaGetLastError();
      throw Error("CUDA out of memory: cannot allocate " + std::to_string(size >> 20) + " MiB with " +
                  std::to_string(cache_.stats().in_use_bytes >> 20) + " MiB in use");
    }
    return p;
  }

  std::mutex mutex_;
  CudaEvents events_;
  BlockCache<CudaEvents> cache_{events_};
};

// Never destroyed: buffers in static objects may be freed after it would have been, at exit.
CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator;
  return *a;
}

}  // namespace

namespace cuda {

void record_stream(const void* ptr, cudaStream_t stream) { allocator().record_use(ptr, stream); }

void retire_stream(cudaStream_t stream) noexcept { allocator().retire(stream); }

}  // namespace cuda

DeviceBuffer::DeviceBuffer(size_t bytes) : ptr_(bytes ? allocator().allocate(bytes) : nullptr), bytes_(bytes) {}

DeviceBuffer::~DeviceBuffer() { release(); }

void DeviceBuffer::release() {
  if (ptr_) allocator().release(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
}

DeviceBuffer::DeviceBuffer(const DeviceBuffer& other) : DeviceBuffer(other.bytes_) {
  copy_bytes(ptr_, Device::cuda, other.ptr_, Device::cuda, bytes_);
}

DeviceBuffer& DeviceBuffer::operator=(const DeviceBuffer& other) {
  if (this != &other) *this = DeviceBuffer(other);
  return *this;
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept : ptr_(other.ptr_), bytes_(other.bytes_) {
  other.ptr_ = nullptr;
  other.bytes_ = 0;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    release();
    ptr_ = other.ptr_;
    bytes_ = other.bytes_;
    other.ptr_ = nullptr;
    other.bytes_ = 0;
  }
  return *this;
}

DeviceMemoryStats device_memory_stats() { return allocator().stats(); }

}  // namespace ringtrain
