// Loss kernels. Per-row results go to buffers and are summed by one block in a fixed order, so a score is
// the same on every run (atomics would add in whatever order the blocks finish).
#include <cfloat>

#include "kernels/kernels.hpp"
#include "kernels/launch.cuh"

namespace ringtrain::kernels {

using cuda::blocks_for;
using cuda::kThreads;

namespace {

// One warp per row. The arg-max is the first index of the maximum, as on the CPU.
__global__ void softmax_cross_entropy_kernel(const float* logits, const int32_t* labels, float* probs, double* row_loss,
                                             double* row_hit, int64_t rows, int64_t classes, float smoothing) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x / kWarp) + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (r >= rows) return;
  const float* z = logits + r * classes;
  float* p = probs + r * classes;
  float zmax = -FLT_MAX;
  for (int64_t j = lane; j < classes; j += kWarp) zmax = fmaxf(zmax, z[j]);
  zmax = warp_max(zmax);
  int64_t first_max = classes;
  double sum = 0.0, shifted = 0.0;
  for (int64_t j = lane; j < classes; j += kWarp) {
    const float e = expf(z[j] - zmax);
    p[j] = e;
    sum += e;
    shifted += static_cast<double>(z[j] - zmax);
    if (z[j] == zmax && j < first_max) first_max = j;
  }
  sum = warp_sum(sum);
  shifted = warp_sum(shifted);
  for (int o = kWarp / 2; o > 0; o /= 2) {
    const long long other = __shfl_xor_sync(0xffffffffu, static_cast<long long>(first_max), o);
    first_max = other < first_max ? other : first_max;
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = lane; j < classes; j += kWarp) p[j] *= inv;
  if (lane == 0) {
    // As on the CPU (src/nn/loss.cpp): the smoothing's term only with smoothing, where it cannot be 0 * inf.
    const int32_t label = labels[r];
    double loss = log(sum) - (1.0 - static_cast<double>(smoothing)) * static_cast<double>(z[label] - zmax);
    if (smoothing > 0.0f) loss -= static_cast<double>(smoothing) / static_cast<double>(classes) * shifted;
    row_loss[r] = loss;
    row_hit[r] = first_max == label ? 1.0 : 0.0;
  }
}

__global__ void softmax_cross_entropy_grad_kernel(const float* probs, const int32_t* labels, float* grad, int64_t rows,
                                                  int64_t classes, float k, float smoothing) {
  const float off_label = smoothing / static_cast<float>(classes), on_label = 1.0f - smoothing + off_label;
  RINGTRAIN_GRID_STRIDE(i, rows * classes) {
    const int64_t r = i / classes, j = i % classes;
    grad[i] = k * (probs[i] - (j == labels[r] ? on_label : off_label));
  }
}

__global__ void squared_error_kernel(const float* out, const float* target, float* diff, double* row_sq,
                                     double* row_abs, int64_t rows, int64_t cols) {
  RINGTRAIN_GRID_STRIDE(r, rows) {
    double sq = 0.0, abs = 0.0;
    for (int64_t j = 0; j < cols; ++j) {
      const float d = out[r * cols + j] - target[r * cols + j];
      diff[r * cols + j] = d;
      sq += static_cast<double>(d) * d;
      abs += fabsf(d);
    }
    row_sq[r] = sq / static_cast<double>(cols);
    row_abs[r] = abs / static_cast<double>(cols);
  }
}

__global__ void scale_kernel(const float* x, float* y, int64_t n, float k) {
  RINGTRAIN_GRID_STRIDE(i, n) y[i] = k * x[i];
}

__global__ void accumulate_sums_kernel(const double* a, const double* b, int64_t n, double* sums) {
  __shared__ double pa[kThreads], pb[kThreads];
  double sa = 0.0, sb = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sa += a[i], sb += b[i];
  pa[threadIdx.x] = sa;
  pb[threadIdx.x] = sb;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) pa[threadIdx.x] += pa[threadIdx.x + stride], pb[threadIdx.x] += pb[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) sums[0] += pa[0], sums[1] += pb[0];
}

}  // namespace

void softmax_cross_entropy(const float* logits, const int32_t* labels, float* probs, double* row_loss,
                           double* row_hit, int64_t rows, int64_t classes, float smoothing, cudaStream_t stream) {
  if (rows == 0) return;
  constexpr int kRowsPerBlock = kThreads / kWarp;
  const unsigned blocks = static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  softmax_cross_entropy_kernel<<<blocks, kThreads, 0, stream>>>(logits, labels, probs, row_loss, row_hit, rows, classes,
                                                                smoothing);
  check_launch("softmax_cross_entropy");
}

void softmax_cross_entropy_grad(const float* probs, const int32_t* labels, float* grad, int64_t rows, int64_t classes,
                                float k, float smoothing, cudaStream_t stream) {
  if (rows == 0) return;
  softmax_cross_entropy_grad_kernel<<<blocks_for(rows * classes), kThreads, 0, stream>>>(probs, labels, grad, rows,
                                                                                          classes, k, smoothing);
  check_launch("softmax_cross_entropy_grad");
}

void squared_error(const float* out, const float* target, float* diff, double* row_sq, double* row_abs, int64_t rows,
                   int64_t cols, cudaStream_t stream) {
  if (rows == 0) return;
  squared_error_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(out, target, diff, row_sq, row_abs, rows, cols);
  check_launch("squared_error");
}

void scale(const float* x, float* y, int64_t n, float k, cudaStream_t stream) {
  if (n == 0) return;
  scale_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, y, n, k);
  check_launch("scale");
}

void accumulate_sums(const double* a, const double* b, int64_t n, double* sums, cudaStream_t stream) {
  accumulate_sums_kernel<<<1, kThreads, 0, stream>>>(a, b, n, sums);
  check_launch("accumulate_sums");
}

}  // namespace ringtrain::kernels
