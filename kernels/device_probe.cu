// CUDA device discovery. Without a GPU, cudaGetDeviceCount fails (e.g. "driver version is insufficient"):
// every failure means "no CUDA device", with the runtime's message kept as the reason.
#include <cuda_runtime.h>

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
  return probe;
}

}  // namespace ringtrain
