// Where a computation runs: the CPU engine (OpenBLAS) or the CUDA engine (cuBLAS, cuDNN and kernels/).
// The CUDA engine is compiled wherever nvcc exists, GPU or not; this header needs no CUDA headers, so the
// rest of ringtrain can name devices and move tensors without knowing how the GPU is driven.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ringtrain/tensor/enum_names.hpp"

namespace ringtrain {

enum class Device { cpu, cuda };
inline constexpr EnumNames<Device, 2> kDeviceNames{{{Device::cpu, "cpu"}, {Device::cuda, "cuda"}}};
constexpr const auto& enum_names(Device) { return kDeviceNames; }

// How the CUDA engine multiplies. fp32: IEEE fp32 throughout (results agree with the CPU engine to ~1e-5).
// tf32: GEMMs and convolutions on tensor cores with 10-bit mantissas (PyTorch's allow_tf32). bf16: GEMMs and
// convolutions read bf16 copies of weights and activations and accumulate in fp32; weights, gradients and
// optimizer state stay fp32 (mixed precision with fp32 master weights). The CPU engine is always fp32.
enum class Precision { fp32, tf32, bf16 };
inline constexpr EnumNames<Precision, 3> kPrecisionNames{
    {{Precision::fp32, "fp32"}, {Precision::tf32, "tf32"}, {Precision::bf16, "bf16"}}};
constexpr const auto& enum_names(Precision) { return kPrecisionNames; }

struct CudaProbe {
  int device_count = 0;
  std::string reason;                // why no device is usable, when device_count == 0
  std::vector<std::string> devices;  // "NVIDIA H100 80GB HBM3, 79.1 GiB, sm_90", by index
};

// Never throws: a machine without a driver or GPU reports device_count 0 and the CUDA runtime's reason.
CudaProbe probe_cuda();

// Makes GPU `gpu` this process's device and creates its streams, cuBLAS and cuDNN handles (once per
// process; a later call must name the same GPU and may change the precision). Throws Error naming the
// reason when there is no such GPU or the build has no CUDA.
void use_cuda_device(int gpu, Precision precision);
bool cuda_device_in_use();
int cuda_gpu();  // the GPU in use, -1 when none
// The PCI address of the GPU in use ("0000:1b:00.0"), which names the physical GPU however
// CUDA_VISIBLE_DEVICES renumbered it; "" when none is in use.
std::string cuda_gpu_pci_bus_id();
// The same for visible GPU `gpu`, without making it this process's device; "" when there is no such GPU.
std::string cuda_pci_bus_id(int gpu);

// Device memory, from a caching allocator over cudaMalloc: freed blocks are kept and handed out again for
// requests of the same rounded size, so a training step allocates nothing after the first. Buffers belong to
// the compute stream; the code that queues work on another stream tells the allocator (record_stream in
// cuda_allocator.hpp), and a freed block then goes to no one before that work has run. No caller waits on
// the host for the device to keep memory safe.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);  // uninitialised
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer& other);  // copies the contents on the device
  DeviceBuffer& operator=(const DeviceBuffer& other);
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;

  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  // Grows to at least `bytes` (the contents are lost when it grows) and returns the address.
  void* reserve(size_t bytes) {
    if (bytes > bytes_) *this = DeviceBuffer(bytes);
    return ptr_;
  }

 private:
  void release();
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

struct DeviceMemoryStats {
  size_t in_use_bytes = 0;  // held by live buffers
  size_t cached_bytes = 0;  // freed, kept for reuse (pending ones included: still used by another stream's work)
  size_t peak_bytes = 0;    // most ever in use
  int64_t cuda_mallocs = 0;
};
DeviceMemoryStats device_memory_stats();

// Copies bytes between any two devices. Copies into host memory wait for the device (the caller reads the
// result next); copies onto the device are queued on the compute stream.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
void fill_device(float* data, int64_t count, float value);  // queued on the compute stream
// Blocks until everything queued on this process's GPU streams has run (a no-op without a device in use).
void synchronize_device();
// Order the GPU's compute and communication streams by an event, without blocking the host: work queued on
// the waiting stream from now on runs after everything queued so far on the other. No-ops without a device
// in use. Data parallel hands gradients to NCCL after the first and applies the optimizer after the second.
void comm_stream_waits_for_compute();
void compute_stream_waits_for_comm();

}  // namespace ringtrain
