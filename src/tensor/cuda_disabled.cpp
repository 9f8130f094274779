// The CUDA entry points of device.hpp for builds configured with -DRINGTRAIN_CUDA=OFF: host memory works,
// anything that needs a GPU says why not.
#include <cstring>

#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/device.hpp"

namespace ringtrain {

namespace {
constexpr const char* kNoCuda = "no CUDA device: ringtrain was built with RINGTRAIN_CUDA=OFF";
}

CudaProbe probe_cuda() { return {0, kNoCuda, {}}; }
void use_cuda_device(int, Precision) { throw Error(std::string("--device cuda: ") + kNoCuda); }
bool cuda_device_in_use() { return false; }
int cuda_gpu() { return -1; }
std::string cuda_gpu_pci_bus_id() { return ""; }
std::string cuda_pci_bus_id(int) { return ""; }
void synchronize_device() {}
void comm_stream_waits_for_compute() {}
void compute_stream_waits_for_comm() {}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes) throw Error(kNoCuda);
}
DeviceBuffer::~DeviceBuffer() = default;
void DeviceBuffer::release() {}
DeviceBuffer::DeviceBuffer(const DeviceBuffer& other) : DeviceBuffer(other.bytes_) {}
DeviceBuffer& DeviceBuffer::operator=(const DeviceBuffer&) { return *this; }
DeviceBuffer::DeviceBuffer(DeviceBuffer&&) noexcept = default;
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&&) noexcept = default;
DeviceMemoryStats device_memory_stats() { return {}; }

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device != Device::cpu || src_device != Device::cpu) throw Error(kNoCuda);
  std::memcpy(dst, src, bytes);
}

void fill_device(float*, int64_t, float) { throw Error(kNoCuda); }

}  // namespace ringtrain
