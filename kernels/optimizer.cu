// Fused optimizer updates: one kernel reads each weight, gradient and state element once and writes the new
// values, for every parameter tensor at once (a block per ParamChunk), instead of a launch per tensor and per
// arithmetic step. The update rules are PyTorch's, as on the CPU (src/nn/optimizer.cpp).
#include "kernels/kernels.hpp"
#include "kernels/launch.cuh"

namespace ringtrain::kernels {

using cuda::kThreads;

namespace {

__device__ bool skipped(const float* skip) { return skip != nullptr && *skip != 0.0f; }

// The gradient an update follows, as on the CPU: the loss's, weight decay's and the L1 penalty's l1 * sign(w).
__device__ float penalised(float g, float w, float weight_decay, float l1) {
  return g + weight_decay * w + l1 * static_cast<float>((w > 0.0f) - (w < 0.0f));
}

__global__ void sgd_kernel(const ParamChunk* chunks, SgdArgs a) {
  if (skipped(a.skip)) return;
  const ParamChunk c = chunks[blockIdx.x];
  for (int64_t j = c.begin + threadIdx.x; j < c.end; j += blockDim.x) {
    const float d = penalised(c.g[j], c.w[j], a.weight_decay, c.l1);
    if (a.momentum == 0.0f) {
      c.w[j] -= a.lr * d;
      continue;
    }
    const float v = a.momentum * c.s1[j] + d;
    c.s1[j] = v;
    c.w[j] -= a.lr * (a.nesterov ? d + a.momentum * v : v);
  }
}

__global__ void adam_kernel(const ParamChunk* chunks, AdamArgs a) {
  if (skipped(a.skip)) return;
  const ParamChunk c = chunks[blockIdx.x];
  const float t = static_cast<float>(*a.steps + 1);
  const float step_size = a.lr / (1.0f - powf(a.beta1, t));
  const float inv_sqrt_bc2 = rsqrtf(1.0f - powf(a.beta2, t));
  const float keep = 1.0f - a.lr * c.decoupled_decay;  // AdamW's decay, as decoupled_keep on the CPU
  for (int64_t j = c.begin + threadIdx.x; j < c.end; j += blockDim.x) {
    const float w = __fmul_rn(c.w[j], keep);  // not fused into what follows: the CPU rounds it alone
    const float d = penalised(c.g[j], w, a.weight_decay, c.l1);
    const float m = a.beta1 * c.s1[j] + (1.0f - a.beta1) * d;
    const float v = a.beta2 * c.s2[j] + (1.0f - a.beta2) * d * d;
    c.s1[j] = m;
    c.s2[j] = v;
    c.w[j] = w - step_size * m / (sqrtf(v) * inv_sqrt_bc2 + a.eps);
  }
}

__global__ void rmsprop_kernel(const ParamChunk* chunks, RmspropArgs a) {
  if (skipped(a.skip)) return;
  const ParamChunk c = chunks[blockIdx.x];
  for (int64_t j = c.begin + threadIdx.x; j < c.end; j += blockDim.x) {
    const float d = penalised(c.g[j], c.w[j], a.weight_decay, c.l1);
    const float s = a.alpha * c.s1[j] + (1.0f - a.alpha) * d * d;
    c.s1[j] = s;
    const float update = d / (sqrtf(s) + a.eps);
    if (a.momentum > 0.0f) {
      const float b = a.momentum * c.s2[j] + update;
      c.s2[j] = b;
      c.w[j] -= a.lr * b;
    } else {
      c.w[j] -= a.lr * update;
    }
  }
}

__global__ void count_step_kernel(long long* steps, const float* skip) {
  if (!skipped(skip)) ++*steps;
}

}  // namespace

void sgd_step(const ParamChunk* chunks, int count, SgdArgs args, cudaStream_t stream) {
  if (count == 0) return;
  sgd_kernel<<<static_cast<unsigned>(count), kThreads, 0, stream>>>(chunks, args);
  check_launch("sgd_step");
}

void adam_step(const ParamChunk* chunks, int count, AdamArgs args, cudaStream_t stream) {
  if (count == 0) return;
  adam_kernel<<<static_cast<unsigned>(count), kThreads, 0, stream>>>(chunks, args);
  check_launch("adam_step");
}

void rmsprop_step(const ParamChunk* chunks, int count, RmspropArgs args, cudaStream_t stream) {
  if (count == 0) return;
  rmsprop_kernel<<<static_cast<unsigned>(count), kThreads, 0, stream>>>(chunks, args);
  check_launch("rmsprop_step");
}

void count_step(long long* steps, const float* skip, cudaStream_t stream) {
  count_step_kernel<<<1, 1, 0, stream>>>(steps, skip);
  check_launch("count_step");
}

}  // namespace ringtrain::kernels
