// Global average pooling (ResNet's head): [planes, plane] -> [planes]. cuDNN's pooling would need a window,
// descriptors and both tensors reset for every plane size; a mean per row is a warp's work and its backward a
// broadcast, so they are ours.
#include "kernels/kernels.hpp"
#include "kernels/launch.cuh"

namespace ringtrain::kernels {

using cuda::blocks_for;
using cuda::kThreads;

namespace {

// A warp per plane (planes are small: 7x7 or 8x8 in ResNets), striding over planes when there are more
// planes than warps in the grid.
__global__ void plane_mean_kernel(const float* x, float* y, int64_t planes, int64_t plane, float inv) {
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarp);
  const int lane = threadIdx.x % kWarp;
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x / kWarp) + threadIdx.x / kWarp; p < planes;
       p += warps) {
    const float* in = x + p * plane;
    float sum = 0.0f;
    for (int64_t i = lane; i < plane; i += kWarp) sum += in[i];
    sum = warp_sum(sum);
    if (lane == 0) y[p] = sum * inv;  // the CPU's rounding: the sum times 1/plane, not divided
  }
}

__global__ void plane_mean_backward_kernel(const float* dy, float* dx, int64_t planes, int64_t plane, float inv) {
  RINGTRAIN_GRID_STRIDE(i, planes * plane) dx[i] = dy[i / plane] * inv;
}

}  // namespace

void plane_mean(const float* x, float* y, int64_t planes, int64_t plane, cudaStream_t stream) {
  if (planes == 0) return;
  // A thread block's warps take one plane each: as many threads as planes times the warp size.
  plane_mean_kernel<<<blocks_for(planes * kWarp), kThreads, 0, stream>>>(x, y, planes, plane,
                                                                         1.0f / static_cast<float>(plane));
  check_launch("plane_mean");
}

void plane_mean_backward(const float* dy, float* dx, int64_t planes, int64_t plane, cudaStream_t stream) {
  if (planes == 0) return;
  plane_mean_backward_kernel<<<blocks_for(planes * plane), kThreads, 0, stream>>>(dy, dx, planes, plane,
                                                                                  1.0f / static_cast<float>(plane));
  check_launch("plane_mean_backward");
}

}  // namespace ringtrain::kernels
