// Gradient clipping by global norm on the device (nn/gradient_clip.hpp): each block sums the squares of its
// chunk, one block adds the chunks' sums in chunk order (the same result every run), and the scaling reads
// the total from device memory, so the host never waits for the norm.
#include "kernels/kernels.hpp"
#include "kernels/launch.cuh"

namespace ringtrain::kernels {

using cuda::kThreads;

namespace {

// The sum of v over the block's threads (kThreads, a multiple of the warp), in thread 0, in a fixed order.
__device__ double block_sum(double v) {
  __shared__ double warps[kThreads / kWarp];
  v = warp_sum(v);
  if (threadIdx.x % kWarp == 0) warps[threadIdx.x / kWarp] = v;
  __syncthreads();
  double sum = 0.0;
  if (threadIdx.x == 0)
    for (int w = 0; w < kThreads / kWarp; ++w) sum += warps[w];
  return sum;
}

__global__ void chunk_squares_kernel(const GradChunk* chunks, double* partial) {
  const GradChunk c = chunks[blockIdx.x];
  double sum = 0.0;
  for (int64_t j = c.begin + threadIdx.x; j < c.end; j += blockDim.x) sum += static_cast<double>(c.g[j]) * c.g[j];
  sum = block_sum(sum);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

__global__ void total_squares_kernel(const double* partial, int count, float* total) {
  double sum = 0.0;
  for (int i = static_cast<int>(threadIdx.x); i < count; i += blockDim.x) sum += partial[i];
  sum = block_sum(sum);
  if (threadIdx.x == 0) *total = static_cast<float>(sum);
}

// clip_factor (src/nn/gradient_clip.cpp) on the device.
__global__ void clip_kernel(const GradChunk* chunks, const float* sum_squares, float max_norm) {
  const float factor = max_norm / (sqrtf(*sum_squares) + 1e-6f);
  if (!(factor < 1.0f)) return;
  const GradChunk c = chunks[blockIdx.x];
  for (int64_t j = c.begin + threadIdx.x; j < c.end; j += blockDim.x) c.g[j] *= factor;
}

}  // namespace

void sum_squares(const GradChunk* chunks, int count, double* partial, float* total, cudaStream_t stream) {
  if (count > 0) {
    chunk_squares_kernel<<<static_cast<unsigned>(count), kThreads, 0, stream>>>(chunks, partial);
    check_launch("chunk_squares");
  }
  total_squares_kernel<<<1, kThreads, 0, stream>>>(partial, count, total);
  check_launch("total_squares");
}

void clip_to_norm(const GradChunk* chunks, int count, const float* sum_squares, float max_norm, cudaStream_t stream) {
  if (count == 0) return;
  clip_kernel<<<static_cast<unsigned>(count), kThreads, 0, stream>>>(chunks, sum_squares, max_norm);
  check_launch("clip_to_norm");
}

}  // namespace ringtrain::kernels
