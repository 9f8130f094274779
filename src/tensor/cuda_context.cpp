// The CUDA context and the caching allocator behind DeviceBuffer.
#include "ringtrain/tensor/cuda_context.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "ringtrain/tensor/error.hpp"
#include "kernels/kernels.hpp"

namespace ringtrain {

namespace cuda {

void check(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clear a sticky launch error so the message is this call's
  throw Error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(status));
}

void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("cuBLAS error in ") + what + ": " + cublasGetStatusString(status));
}

void check(cudnnStatus_t status, const char* what) {
  if (status != CUDNN_STATUS_SUCCESS)
    throw Error(std::string("cuDNN error in ") + what + ": " + cudnnGetErrorString(status));
}

Context::Context(int gpu, Precision precision) : gpu_(gpu), precision_(precision) {
  check(cudaSetDevice(gpu), "cudaSetDevice");
  check(cudaStreamCreateWithFlags(&compute_, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cudaStreamCreateWithFlags(&comm_, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cudaStreamCreateWithFlags(&upload_, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cublasCreate(&cublas_), "cublasCreate");
  check(cublasSetStream(cublas_, compute_), "cublasSetStream");
  set_precision(precision);
  check(cudnnCreate(&cudnn_), "cudnnCreate");
  check(cudnnSetStream(cudnn_, compute_), "cudnnSetStream");
}

// Errors are ignored here: at process exit the driver may already be shutting down.
Context::~Context() {
  workspace_ = DeviceBuffer();
  if (cudnn_) cudnnDestroy(cudnn_);
  if (cublas_) cublasDestroy(cublas_);
  for (cudaStream_t s : {compute_, comm_, upload_})
    if (s) cudaStreamDestroy(s);
}

void Context::set_precision(Precision precision) {
  // fp32 keeps IEEE products (CUBLAS_DEFAULT_MATH never uses TF32); tf32 opts in to tensor cores. bf16 GEMMs
  // pick tensor cores by their data type.
  check(cublasSetMathMode(cublas_, precision == Precision::tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
        "cublasSetMathMode");
  precision_ = precision;
}

void* Context::workspace(size_t bytes) { return workspace_.reserve(bytes); }

namespace {
std::unique_ptr<Context>& context_slot() {
  static std::unique_ptr<Context> slot;
  return slot;
}
}  // namespace

Context& context() {
  const std::unique_ptr<Context>& slot = context_slot();
  if (!slot) throw Error("the CUDA engine is not initialised (no --device cuda)");
  // The current device is per host thread: the engine's background thread must bind to ours too.
  thread_local int bound = -1;
  if (bound != slot->gpu()) {
    check(cudaSetDevice(slot->gpu()), "cudaSetDevice");
    bound = slot->gpu();
  }
  return *slot;
}

void stream_wait(cudaStream_t waiter, cudaStream_t producer) {
  cudaEvent_t event;
  check(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventRecord(event, producer), "cudaEventRecord");
  check(cudaStreamWaitEvent(waiter, event, 0), "cudaStreamWaitEvent");
  cudaEventDestroy(event);  // the wait has captured it; CUDA releases it once it has fired
}

}  // namespace cuda

CudaProbe probe_cuda() {
  CudaProbe probe;
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    probe.reason = std::string("no CUDA device: ") + cudaGetErrorString(status);
    cudaGetLastError();  // clear the sticky error so later CUDA calls start clean
    return probe;
  }
  if (count == 0) probe.reason = "no CUDA device: the driver reports zero GPUs";
  probe.device_count = count;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
      cudaGetLastError();
      probe.devices.push_back("(properties unavailable)");
      continue;
    }
    char line[320];
    std::snprintf(line, sizeof line, "%s, %.1f GiB, sm_%d%d", p.name, static_cast<double>(p.totalGlobalMem) / (1 << 30),
                  p.major, p.minor);
    probe.devices.push_back(line);
  }
  return probe;
}

void use_cuda_device(int gpu, Precision precision) {
  std::unique_ptr<cuda::Context>& slot = cuda::context_slot();
  if (slot) {
    if (slot->gpu() != gpu)
      throw Error("the CUDA engine already runs on GPU " + std::to_string(slot->gpu()) + "; one process drives one GPU");
    cuda::context().set_precision(precision);  // layers made from now on compute in it
    return;
  }
  const CudaProbe probe = probe_cuda();
  if (probe.device_count == 0) throw Error("--device cuda: " + probe.reason);
  if (gpu < 0 || gpu >= probe.device_count)
    throw Error("--device cuda: GPU " + std::to_string(gpu) + " does not exist (this node has " +
                std::to_string(probe.device_count) + ")");
  slot = std::make_unique<cuda::Context>(gpu, precision);
  // Handles must go before the CUDA runtime unloads at exit; it registered its own teardown when the probe
  // first called it, and exit handlers run in reverse order of registration.
  std::atexit([] { cuda::context_slot().reset(); });
}

bool cuda_device_in_use() { return cuda::context_slot() != nullptr; }
int cuda_gpu() { return cuda_device_in_use() ? cuda::context_slot()->gpu() : -1; }

void synchronize_device() {
  if (cuda_device_in_use()) cuda::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

void comm_stream_waits_for_compute() {
  if (cuda_device_in_use()) cuda::stream_wait(cuda::context().comm(), cuda::context().compute());
}

void compute_stream_waits_for_comm() {
  if (cuda_device_in_use()) cuda::stream_wait(cuda::context().compute(), cuda::context().comm());
}

// ---- caching allocator ----

namespace {

// Small requests round to 512 bytes, large ones to whole 2 MiB: sizes then repeat exactly from step to
// step and every freed block finds its next owner.
size_t round_request(size_t bytes) {
  constexpr size_t kSmall = 512, kLarge = size_t{2} << 20;
  if (bytes < (size_t{1} << 20)) return (bytes + kSmall - 1) / kSmall * kSmall;
  return (bytes + kLarge - 1) / kLarge * kLarge;
}

class CachingAllocator {
 public:
  void* allocate(size_t bytes) {
    const size_t size = round_request(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<void*>& free = free_[size];
    void* p = nullptr;
    if (!free.empty()) {
      p = free.back();
      free.pop_back();
      stats_.cached_bytes -= size;
    } else {
      p = cuda_malloc(size);
    }
    stats_.in_use_bytes += size;
    stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.in_use_bytes);
    return p;
  }

  void release(void* p, size_t bytes) {
    const size_t size = round_request(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    free_[size].push_back(p);
    stats_.in_use_bytes -= size;
    stats_.cached_bytes += size;
  }

  DeviceMemoryStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  // Called with the mutex held. When the GPU is full, cached blocks of other sizes go back to CUDA first.
  void* cuda_malloc(size_t size) {
    cuda::context();  // a device must be chosen before anything lands on it
    void* p = nullptr;
    if (cudaMalloc(&p, size) != cudaSuccess) {
      cudaGetLastError();
      cudaDeviceSynchronize();  // blocks still in flight on the compute stream must finish before cudaFree
      for (auto& [s, blocks] : free_)
        for (void* b : blocks) cudaFree(b);
      free_.clear();
      stats_.cached_bytes = 0;
      if (cudaMalloc(&p, size) != cudaSuccess) {
        cudaGetLastError();
        throw Error("CUDA out of memory: cannot allocate " + std::to_string(size >> 20) + " MiB with " +
                    std::to_string(stats_.in_use_bytes >> 20) + " MiB in use");
      }
    }
    ++stats_.cuda_mallocs;
    return p;
  }

  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  DeviceMemoryStats stats_;
};

// Never destroyed: buffers in static objects may be freed after it would have been, at exit.
CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator;
  return *a;
}

}  // namespace

DeviceBuffer::DeviceBuffer(size_t bytes) : ptr_(bytes ? allocator().allocate(bytes) : nullptr), bytes_(bytes) {}

DeviceBuffer::~DeviceBuffer() { release(); }

void DeviceBuffer::release() {
  if (ptr_) allocator().release(ptr_, bytes_);
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

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device == Device::cpu && src_device == Device::cpu) {
    std::memcpy(dst, src, bytes);
    return;
  }
  cudaStream_t stream = cuda::context().compute();
  cuda::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream), "cudaMemcpyAsync");
  if (dst_device == Device::cpu) cuda::check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

void fill_device(float* data, int64_t count, float value) {
  if (count == 0) return;
  cudaStream_t stream = cuda::context().compute();
  if (value == 0.0f)
    cuda::check(cudaMemsetAsync(data, 0, sizeof(float) * static_cast<size_t>(count), stream), "cudaMemsetAsync");
  else
    kernels::fill(data, count, value, stream);
}

std::vector<bool> device_arrays_nonfinite(const float* const* data, const int64_t* sizes, size_t count) {
  cudaStream_t stream = cuda::context().compute();
  DeviceBuffer flags(sizeof(int) * std::max<size_t>(count, 1));
  cuda::check(cudaMemsetAsync(flags.get(), 0, flags.bytes(), stream), "cudaMemsetAsync");
  for (size_t i = 0; i < count; ++i) kernels::flag_nonfinite(data[i], sizes[i], static_cast<int*>(flags.get()) + i, stream);
  std::vector<int> host(count);
  copy_bytes(host.data(), Device::cpu, flags.get(), Device::cuda, sizeof(int) * count);
  return std::vector<bool>(host.begin(), host.end());
}

}  // namespace ringtrain
