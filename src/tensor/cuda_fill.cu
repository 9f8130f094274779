// Filling device memory with a value: the tensor's one kernel (Tensor::fill on the GPU), kept here so that
// the tensor layer needs nothing from kernels/.
#include "ringtrain/tensor/cuda_context.hpp"
#include "ringtrain/tensor/cuda_grid.hpp"

namespace ringtrain {

namespace {

__global__ void fill_kernel(float* data, int64_t n, float value) {
  RINGTRAIN_GRID_STRIDE(i, n) data[i] = value;
}

}  // namespace

void fill_device(float* data, int64_t count, float value) {
  if (count == 0) return;
  cudaStream_t stream = cuda::context().compute();
  if (value == 0.0f) {
    cuda::check(cudaMemsetAsync(data, 0, sizeof(float) * static_cast<size_t>(count), stream), "cudaMemsetAsync");
    return;
  }
  fill_kernel<<<cuda::blocks_for(count), cuda::kThreads, 0, stream>>>(data, count, value);
  cuda::check(cudaGetLastError(), "fill_kernel");
}

}  // namespace ringtrain
