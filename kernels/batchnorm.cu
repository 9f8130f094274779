// Sync batchnorm's kernels (nn/cuda/batchnorm.cpp): per-channel sums over x viewed as [n, channels, spatial],
// and the element-wise steps around them. cuDNN's batchnorm computes its statistics itself, over this
// process's batch; sync batchnorm needs the sums in between, on the host, to add the other replicas'. The
// formulas are the CPU layer's (src/nn/batchnorm.cpp).
//
// The sums are deterministic: every block of the first stage sums a fixed slice of one channel's values in a
// fixed order of shuffles, and the second stage adds the slices in index order. No atomics: the same input
// gives bitwise the same sums on every run, and so on every replica that holds the same data.
#include "kernels/kernels.hpp"
#include "kernels/launch.cuh"

namespace ringtrain::kernels {

using cuda::blocks_for;
using cuda::kThreads;

namespace {

constexpr int kMaxGridY = 65535;  // CUDA's limit on gridDim.y: more channels than this take turns

// The slices each channel is cut into: enough blocks in all to fill a large GPU (about 2048), none with fewer
// than 16 values a thread unless the channel is that small. A function of the shape alone, so the order of
// the additions is too.
int slices_for(int64_t n, int64_t channels, int64_t spatial) {
  const int64_t values = n * spatial, per_block = int64_t{kThreads} * 16;
  const int64_t wanted = (values + per_block - 1) / per_block;
  const int64_t fill = (2048 + channels - 1) / channels;
  const int64_t slices = wanted < fill ? wanted : fill;
  return static_cast<int>(slices < 1 ? 1 : (slices > 1024 ? 1024 : slices));
}

// Sums a and b over the block (kThreads threads): the result in thread 0. A butterfly in each warp, then the
// warps' sums by the first warp; the same order every run.
__device__ void block_sum2(double& a, double& b) {
  constexpr int kWarps = kThreads / kWarp;
  __shared__ double sa[kWarps], sb[kWarps];
  a = warp_sum(a), b = warp_sum(b);
  const int warp = static_cast<int>(threadIdx.x) / kWarp, lane = static_cast<int>(threadIdx.x) % kWarp;
  if (lane == 0) sa[warp] = a, sb[warp] = b;
  __syncthreads();
  if (warp == 0) {
    a = lane < kWarps ? sa[lane] : 0.0;
    b = lane < kWarps ? sb[lane] : 0.0;
    a = warp_sum(a), b = warp_sum(b);
  }
  __syncthreads();  // the shared arrays are written again for the block's next channel
}

// What the moments sum per value: d = x - shift and d^2, where shift is the global mean of the first pass
// (float(totals[c] / count), as the CPU rounds it), or 0 in the first pass itself.
struct Moments {
  const float* x;
  const double* totals;  // null in the first pass
  double count;
  struct Channel {
    const float* x;
    float shift;
    __device__ void add(int64_t at, double& a, double& b) const {
      const float d = x[at] - shift;
      a += d;
      b += static_cast<double>(d) * d;
    }
  };
  __device__ Channel channel(int64_t c) const {
    return {x, totals ? static_cast<float>(totals[c] / count) : 0.0f};
  }
};

// What backward sums per value: g and g * xhat, where g is dy, or 0 where a folded ReLU's output y was 0, and
// xhat = (x - mean) * inv_std is recomputed from forward's statistics.
struct GradientTerms {
  const float *x, *dy, *y;  // y null: no folded ReLU
  const float *mean, *inv_std;
  struct Channel {
    const float *x, *dy, *y;
    float mean, inv_std;
    __device__ void add(int64_t at, double& a, double& b) const {
      const float g = !y || y[at] > 0.0f ? dy[at] : 0.0f;
      const float xhat = (x[at] - mean) * inv_std;
      a += g;
      b += static_cast<double>(g) * xhat;
    }
  };
  __device__ Channel channel(int64_t c) const { return {x, dy, y, mean[c], inv_std[c]}; }
};

// Stage 1: block (s, c) sums slice s of channel c's n * spatial values (value i is row i / spatial, position
// i % spatial) into partials[(c * slices + s) * 2 + {0, 1}].
template <class Terms>
__global__ void channel_partials_kernel(Terms terms, int64_t n, int64_t channels, int64_t spatial, int slices,
                                        double* partials) {
  const int64_t values = n * spatial, per_slice = (values + slices - 1) / slices;
  const int64_t begin = blockIdx.x * per_slice;
  const int64_t end = begin + per_slice < values ? begin + per_slice : values;
  for (int64_t c = blockIdx.y; c < channels; c += gridDim.y) {
    const typename Terms::Channel channel = terms.channel(c);
    double a = 0.0, b = 0.0;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
      const int64_t row = i / spatial;
      channel.add((row * channels + c) * spatial + (i - row * spatial), a, b);
    }
    block_sum2(a, b);
    if (threadIdx.x == 0) {
      partials[(c * slices + blockIdx.x) * 2] = a;
      partials[(c * slices + blockIdx.x) * 2 + 1] = b;
    }
  }
}

// Stage 2: a thread per channel adds its slices in order: sums[c] and sums[channels + c], the CPU's layout.
__global__ void channel_totals_kernel(const double* partials, int64_t channels, int slices, double* sums) {
  RINGTRAIN_GRID_STRIDE(c, channels) {
    double a = 0.0, b = 0.0;
    for (int s = 0; s < slices; ++s) {
      a += partials[(c * slices + s) * 2];
      b += partials[(c * slices + s) * 2 + 1];
    }
    sums[c] = a;
    sums[channels + c] = b;
  }
}

template <class Terms>
void channel_sums(Terms terms, int64_t n, int64_t channels, int64_t spatial, double* scratch, double* sums,
                  cudaStream_t stream, const char* what) {
  if (channels == 0) return;
  const int slices = slices_for(n, channels, spatial);
  const dim3 grid(static_cast<unsigned>(slices), static_cast<unsigned>(channels < kMaxGridY ? channels : kMaxGridY));
  channel_partials_kernel<<<grid, kThreads, 0, stream>>>(terms, n, channels, spatial, slices, scratch);
  check_launch(what);
  channel_totals_kernel<<<blocks_for(channels), kThreads, 0, stream>>>(scratch, channels, slices, sums);
  check_launch(what);
}

// The CPU's BatchNorm::batch_moments after its last sum, and its update_running_statistics.
__global__ void statistics_kernel(const double* totals, const double* sums, double count, int64_t channels, float eps,
                                  float momentum, float unbiased, float* mean, float* inv_std, float* running_mean,
                                  float* running_var) {
  RINGTRAIN_GRID_STRIDE(c, channels) {
    const float shift = static_cast<float>(totals[c] / count);
    const double shifted_mean = sums[c] / count;
    const float m = static_cast<float>(shift + shifted_mean);
    const float v = static_cast<float>(fmax(0.0, sums[channels + c] / count - shifted_mean * shifted_mean));
    mean[c] = m;
    inv_std[c] = 1.0f / sqrtf(v + eps);
    running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * m;
    running_var[c] = (1.0f - momentum) * running_var[c] + momentum * v * unbiased;
  }
}

// y = gamma * xhat + beta, clamped at 0 by a folded ReLU as the CPU clamps (NaN passes: the compare is false).
__global__ void normalize_kernel(const float* x, const float* mean, const float* inv_std, const float* gamma,
                                 const float* beta, float* y, int64_t total, int64_t channels, int64_t spatial,
                                 bool relu) {
  RINGTRAIN_GRID_STRIDE(i, total) {
    const int64_t c = (i / spatial) % channels;
    const float xhat = (x[i] - mean[c]) * inv_std[c];
    const float v = gamma[c] * xhat + beta[c];
    y[i] = relu && v < 0.0f ? 0.0f : v;
  }
}

__global__ void parameter_gradients_kernel(const double* sums, int64_t channels, float* gamma_grad, float* beta_grad) {
  RINGTRAIN_GRID_STRIDE(c, channels) {
    gamma_grad[c] += static_cast<float>(sums[channels + c]);
    beta_grad[c] += static_cast<float>(sums[c]);
  }
}

__global__ void input_gradient_kernel(const float* x, const float* dy, const float* y, const float* mean,
                                      const float* inv_std, const float* gamma, const double* sums, float count,
                                      float* dx, int64_t total, int64_t channels, int64_t spatial) {
  RINGTRAIN_GRID_STRIDE(i, total) {
    const int64_t c = (i / spatial) % channels;
    const float scale = gamma[c] * inv_std[c] / count;
    const float sum_dy = static_cast<float>(sums[c]), sum_dy_xhat = static_cast<float>(sums[channels + c]);
    const float g = !y || y[i] > 0.0f ? dy[i] : 0.0f;
    const float xhat = (x[i] - mean[c]) * inv_std[c];
    dx[i] = scale * (count * g - sum_dy - xhat * sum_dy_xhat);
  }
}

}  // namespace

size_t batchnorm_scratch_doubles(int64_t n, int64_t channels, int64_t spatial) {
  return static_cast<size_t>(channels) * static_cast<size_t>(slices_for(n, channels, spatial)) * 2;
}

void batchnorm_moments(const float* x, int64_t n, int64_t channels, int64_t spatial, const double* totals,
                       double count, double* scratch, double* sums, cudaStream_t stream) {
  channel_sums(Moments{x, totals, count}, n, channels, spatial, scratch, sums, stream, "batchnorm_moments");
}

void batchnorm_statistics(const double* totals, const double* sums, double count, int64_t channels, float eps,
                          float momentum, float* mean, float* inv_std, float* running_mean, float* running_var,
                          cudaStream_t stream) {
  if (channels == 0) return;
  // The CPU's unbiased factor, from the count as an integer as it has it.
  const int64_t values = static_cast<int64_t>(count);
  const float unbiased = static_cast<float>(values) / static_cast<float>(values - 1);
  statistics_kernel<<<blocks_for(channels), kThreads, 0, stream>>>(totals, sums, count, channels, eps, momentum,
                                                                   unbiased, mean, inv_std, running_mean, running_var);
  check_launch("batchnorm_statistics");
}

void batchnorm_normalize(const float* x, const float* mean, const float* inv_std, const float* gamma,
                         const float* beta, float* y, int64_t n, int64_t channels, int64_t spatial, bool relu,
                         cudaStream_t stream) {
  const int64_t total = n * channels * spatial;
  if (total == 0) return;
  normalize_kernel<<<blocks_for(total), kThreads, 0, stream>>>(x, mean, inv_std, gamma, beta, y, total, channels,
                                                               spatial, relu);
  check_launch("batchnorm_normalize");
}

void batchnorm_gradient_sums(const float* x, const float* dy, const float* y, const float* mean,
                             const float* inv_std, int64_t n, int64_t channels, int64_t spatial, double* scratch,
                             double* sums, cudaStream_t stream) {
  channel_sums(GradientTerms{x, dy, y, mean, inv_std}, n, channels, spatial, scratch, sums, stream,
               "batchnorm_gradient_sums");
}

void batchnorm_parameter_gradients(const double* sums, int64_t channels, float* gamma_grad, float* beta_grad,
                                   cudaStream_t stream) {
  if (channels == 0) return;
  parameter_gradients_kernel<<<blocks_for(channels), kThreads, 0, stream>>>(sums, channels, gamma_grad, beta_grad);
  check_launch("batchnorm_parameter_gradients");
}

void batchnorm_input_gradient(const float* x, const float* dy, const float* y, const float* mean,
                              const float* inv_std, const float* gamma, const double* sums, float count, float* dx,
                              int64_t n, int64_t channels, int64_t spatial, cudaStream_t stream) {
  const int64_t total = n * channels * spatial;
  if (total == 0) return;
  input_gradient_kernel<<<blocks_for(total), kThreads, 0, stream>>>(x, dy, y, mean, inv_std, gamma, sums, count, dx,
                                                                    total, channels, spatial);
  check_launch("batchnorm_input_gradient");
}

}  // namespace ringtrain::kernels
