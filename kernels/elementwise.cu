// Element-wise kernels for the layers: the non-finite flag, bf16 conversion, bias and ReLU epilogues, the
// residual sum, activations, dropout.
#include "kernels/kernels.hpp"
#include "kernels/launch.cuh"
#include "ringtrain/tensor/counter_rng.hpp"

namespace ringtrain::kernels {

using cuda::blocks_for;
using cuda::kThreads;

namespace {

// max(v, 0) as the CPU's std::max(v, 0.0f) computes it: a NaN passes (fmaxf would make it 0), so that the
// non-finite guard sees a diverged step on either device.
__device__ float relu_of(float v) { return v < 0.0f ? 0.0f : v; }

__global__ void flag_nonfinite_kernel(const float* x, int64_t n, int* flag) {
  RINGTRAIN_GRID_STRIDE(i, n) if (!isfinite(x[i])) *flag = 1;  // a benign race: every writer writes 1
}

__global__ void to_bf16_kernel(const float* src, __nv_bfloat16* dst, int64_t n) {
  RINGTRAIN_GRID_STRIDE(i, n) dst[i] = __float2bfloat16(src[i]);
}

__global__ void bias_relu_kernel(float* y, const float* bias, int64_t n, int64_t channels, int64_t inner, bool relu) {
  RINGTRAIN_GRID_STRIDE(i, n) {
    float v = y[i];
    if (bias) v += bias[(i / inner) % channels];
    y[i] = relu ? relu_of(v) : v;
  }
}

__global__ void relu_mask_kernel(const float* dy, const float* y, float* out, int64_t n) {
  RINGTRAIN_GRID_STRIDE(i, n) out[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

__global__ void add_kernel(const float* a, const float* b, float* out, int64_t n, bool relu) {
  RINGTRAIN_GRID_STRIDE(i, n) {
    const float s = a[i] + b[i];
    out[i] = relu ? relu_of(s) : s;
  }
}

// The CPU engine's formulas (src/nn/activation.cpp), element by element.
__device__ float activation_value(Activation kind, float param, float v) {
  switch (kind) {
    case Activation::relu: return relu_of(v);
    case Activation::tanh: return tanhf(v);
    case Activation::sigmoid: return 1.0f / (1.0f + expf(-v));
    case Activation::leaky_relu: return v > 0.0f ? v : param * v;
    case Activation::elu: return v > 0.0f ? v : param * expm1f(v);
    case Activation::gelu: return 0.5f * v * (1.0f + erff(v * 0.70710678f));
  }
  return v;
}

// `s`: the output y, or GELU's input x.
__device__ float activation_derivative(Activation kind, float param, float s) {
  const float out = s, x = s;
  switch (kind) {
    case Activation::relu: return out > 0.0f ? 1.0f : 0.0f;
    case Activation::tanh: return 1.0f - out * out;
    case Activation::sigmoid: return out * (1.0f - out);
    case Activation::leaky_relu: return out > 0.0f ? 1.0f : param;
    case Activation::elu: return out > 0.0f ? 1.0f : out + param;
    case Activation::gelu: return 0.5f * (1.0f + erff(x * 0.70710678f)) + x * expf(-0.5f * x * x) * 0.39894228f;
  }
  return 1.0f;
}

__global__ void activation_forward_kernel(Activation kind, float param, const float* x, float* y, int64_t n) {
  RINGTRAIN_GRID_STRIDE(i, n) y[i] = activation_value(kind, param, x[i]);
}

__global__ void activation_backward_kernel(Activation kind, float param, const float* saved, const float* dy,
                                           float* dx, int64_t n) {
  RINGTRAIN_GRID_STRIDE(i, n) dx[i] = dy[i] * activation_derivative(kind, param, saved[i]);
}

__global__ void dropout_kernel(const float* x, float* y, int64_t n, float p, float keep_scale, uint64_t seed,
                               uint64_t call) {
  RINGTRAIN_GRID_STRIDE(i, n) y[i] = counter_uniform(seed, call, static_cast<uint64_t>(i)) < p ? 0.0f : x[i] * keep_scale;
}

}  // namespace

void flag_nonfinite(const float* x, int64_t n, int* flag, cudaStream_t stream) {
  if (n == 0) return;
  flag_nonfinite_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, n, flag);
  check_launch("flag_nonfinite");
}

void to_bf16(const float* src, __nv_bfloat16* dst, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  to_bf16_kernel<<<blocks_for(n), kThreads, 0, stream>>>(src, dst, n);
  check_launch("to_bf16");
}

void bias_relu(float* y, const float* bias, int64_t n, int64_t channels, int64_t inner, bool relu,
               cudaStream_t stream) {
  if (n == 0 || (!bias && !relu)) return;
  bias_relu_kernel<<<blocks_for(n), kThreads, 0, stream>>>(y, bias, n, channels, inner, relu);
  check_launch("bias_relu");
}

void relu_mask(const float* dy, const float* y, float* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  relu_mask_kernel<<<blocks_for(n), kThreads, 0, stream>>>(dy, y, out, n);
  check_launch("relu_mask");
}

void add(const float* a, const float* b, float* out, int64_t n, bool relu, cudaStream_t stream) {
  if (n == 0) return;
  add_kernel<<<blocks_for(n), kThreads, 0, stream>>>(a, b, out, n, relu);
  check_launch("add");
}

void activation_forward(Activation kind, float param, const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  activation_forward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(kind, param, x, y, n);
  check_launch("activation_forward");
}

void activation_backward(Activation kind, float param, const float* saved, const float* dy, float* dx, int64_t n,
                         cudaStream_t stream) {
  if (n == 0) return;
  activation_backward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(kind, param, saved, dy, dx, n);
  check_launch("activation_backward");
}

void dropout(const float* x, float* y, int64_t n, float p, uint64_t seed, uint64_t call, cudaStream_t stream) {
  if (n == 0) return;
  dropout_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, y, n, p, 1.0f / (1.0f - p), seed, call);
  check_launch("dropout");
}

}  // namespace ringtrain::kernels
