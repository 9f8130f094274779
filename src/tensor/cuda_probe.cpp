// What the CUDA runtime can see, asked without ever failing: the devices, or why there are none.
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "ringtrain/tensor/device.hpp"

namespace ringtrain {

namespace {

// Without an NVIDIA driver the runtime says "CUDA driver version is insufficient", which reads as "upgrade
// your driver" on a node that has no GPU at all.
constexpr const char* kNoDriver = "no NVIDIA GPU driver or device found on this node; the CUDA runtime says: ";

bool driver_found() {
  std::error_code ec;
  if (std::filesystem::exists("/proc/driver/nvidia/version", ec)) return true;
  void* libcuda = ::dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (libcuda) ::dlclose(libcuda);
  return libcuda != nullptr;
}

}  // namespace

CudaProbe probe_cuda() {
  CudaProbe probe;
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    probe.reason = std::string(driver_found() ? "no usable CUDA device: " : kNoDriver) + cudaGetErrorString(status);
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

std::string cuda_pci_bus_id(int gpu) {
  char id[32] = {};  // "domain:bus:device.function", 13 characters and the terminator
  if (gpu < 0 || cudaDeviceGetPCIBusId(id, sizeof id, gpu) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return id;
}

std::string cuda_gpu_pci_bus_id() { return cuda_device_in_use() ? cuda_pci_bus_id(cuda_gpu()) : ""; }

}  // namespace ringtrain
