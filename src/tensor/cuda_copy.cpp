// Copies between host and device memory, and the whole-device wait.
#include <cstring>

#include "ringtrain/tensor/cuda_context.hpp"

namespace ringtrain {

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

void synchronize_device() {
  if (cuda_device_in_use()) cuda::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

}  // namespace ringtrain
