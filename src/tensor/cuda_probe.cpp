// What the CUDA runtime can see, asked without ever failing: the devices, or why there are none.
#include <cuda_runtime.h>

#include <cstdio>
#include <string>

#include "ringtrain/tensor/device.hpp"

namespace ringtrain {

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

std::string cuda_gpu_pci_bus_id() {
  if (!cuda_device_in_use()) return "";
  char id[32] = {};  // "domain:bus:device.function", 13 characters and the terminator
  if (cudaDeviceGetPCIBusId(id, sizeof id, cuda_gpu()) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return id;
}

}  // namespace ringtrain
