// ringtrain's own CUDA kernels: everything that is not a GEMM, a convolution, pooling or batch
// normalisation (those are cuBLAS and cuDNN). Each launcher queues one kernel on `stream` and returns;
// pointers are device memory. The formulas are the CPU engine's (src/nn), element for element.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace ringtrain::kernels {

void fill(float* data, int64_t n, float value, cudaStream_t stream);
void to_bf16(const float* src, __nv_bfloat16* dst, int64_t n, cudaStream_t stream);
// *flag = 1 when any of x[0..n) is NaN or infinite (flag is left alone otherwise).
void flag_nonfinite(const float* x, int64_t n, int* flag, cudaStream_t stream);

// ---- layers ----
// y[i] += bias[(i / inner) % channels] (bias may be null), then max(y, 0) when relu: the epilogue of a
// linear layer (inner = 1) or a convolution (inner = height * width).
void bias_relu(float* y, const float* bias, int64_t n, int64_t channels, int64_t inner, bool relu,
               cudaStream_t stream);
// out[i] = y[i] > 0 ? dy[i] : 0: the gradient through a ReLU folded into the layer before it.
void relu_mask(const float* dy, const float* y, float* out, int64_t n, cudaStream_t stream);

enum class Activation { relu, tanh, sigmoid };
void activation_forward(Activation kind, const float* x, float* y, int64_t n, cudaStream_t stream);
// dx from dy and the forward output y (each derivative is a function of y).
void activation_backward(Activation kind, const float* y, const float* dy, float* dx, int64_t n, cudaStream_t stream);

// Inverted dropout with the mask of counter_uniform(seed, call, i) < p: y = x * (keep ? 1/(1-p) : 0).
// Backward is the same function of dy.
void dropout(const float* x, float* y, int64_t n, float p, uint64_t seed, uint64_t call, cudaStream_t stream);

// ---- losses ----
// Per row r: probs = softmax(logits[r]), row_loss[r] = -log probs[label], row_hit[r] = argmax == label.
void softmax_cross_entropy(const float* logits, const int32_t* labels, float* probs, double* row_loss,
                           double* row_hit, int64_t rows, int64_t classes, cudaStream_t stream);
// grad = k * (probs - onehot(label)).
void softmax_cross_entropy_grad(const float* probs, const int32_t* labels, float* grad, int64_t rows, int64_t classes,
                                float k, cudaStream_t stream);
// diff = out - target; per row the mean squared and mean absolute difference.
void squared_error(const float* out, const float* target, float* diff, double* row_sq, double* row_abs, int64_t rows,
                   int64_t cols, cudaStream_t stream);
void scale(const float* x, float* y, int64_t n, float k, cudaStream_t stream);  // y = k * x
// sums[0] += sum(a), sums[1] += sum(b), in one block and a fixed order (the same result every run).
void accumulate_sums(const double* a, const double* b, int64_t n, double* sums, cudaStream_t stream);

// ---- optimizers: one launch updates every parameter ----
// A parameter tensor's slice [begin, end) with its gradient and state (s1, s2 may be null when unused).
struct ParamChunk {
  float* w;
  const float* g;
  float* s1;
  float* s2;
  int64_t begin, end;
};
struct SgdArgs {
  float lr, momentum, weight_decay;
  bool nesterov;
};
struct AdamArgs {
  float step_size, inv_sqrt_bc2, beta1, beta2, eps, weight_decay;  // step_size = lr / (1 - beta1^t)
};
struct RmspropArgs {
  float lr, alpha, eps, weight_decay, momentum;
};
// chunks: a device array of `count` ParamChunk, one block each.
void sgd_step(const ParamChunk* chunks, int count, SgdArgs args, cudaStream_t stream);
void adam_step(const ParamChunk* chunks, int count, AdamArgs args, cudaStream_t stream);
void rmsprop_step(const ParamChunk* chunks, int count, RmspropArgs args, cudaStream_t stream);

}  // namespace ringtrain::kernels
