// ringtrain's own CUDA kernels: everything that is not a GEMM, a convolution, windowed pooling or batch
// normalisation over this process's batch alone (those are cuBLAS and cuDNN). Each launcher queues one kernel
// on `stream` and returns; pointers are device memory. The formulas are the CPU engine's (src/nn), element for
// element.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace ringtrain::kernels {

// Elements per block of the kernels that walk every parameter in chunks (the fused optimizers, gradient
// clipping): big enough to amortise a block, small enough that a few large tensors still spread over every SM.
constexpr int64_t kChunkElements = int64_t{1} << 16;

void to_bf16(const float* src, __nv_bfloat16* dst, int64_t n, cudaStream_t stream);
// *flag = 1 when any of x[0..n) is NaN or infinite (flag is left alone otherwise).
void flag_nonfinite(const float* x, int64_t n, int* flag, cudaStream_t stream);

// ---- the non-finite check of a step's gradients (nn/cuda/gradient_check.cpp), all on the device ----
struct NonfiniteStatus {
  float verdict;         // this step's: 1 when a gradient holds a NaN or an infinity (other ranks may add theirs)
  float skip;            // what the optimizers read: not 0 to skip this step's update
  int first_now;         // this step's first bad parameter on this rank, or -1
  int first_param;       // the first bad step's, or -1
  long long first_step;  // the first bad step since the host last read, or -1
  long long bad_steps;   // bad steps since the host last read
};
// From the per-parameter flags of flag_nonfinite: status->verdict and status->first_now.
void summarize_nonfinite(const int* flags, int count, NonfiniteStatus* status, cudaStream_t stream);
// Records status->verdict as step `step`'s: counts a bad one, and sets status->skip (for this step, or with
// keep_skipping for every step since the first bad one).
void record_nonfinite(NonfiniteStatus* status, long long step, bool keep_skipping, cudaStream_t stream);

// ---- gradient clipping by global norm (nn/cuda/gradient_clip.cpp) ----
// A gradient's slice [begin, end), one block each.
struct GradChunk {
  float* g;
  int64_t begin, end;
};
// partial[i]: chunk i's sum of squares (count doubles); *total: their sum, in chunk order.
void sum_squares(const GradChunk* chunks, int count, double* partial, float* total, cudaStream_t stream);
// Scales the chunks by max_norm / (sqrt(*sum_squares) + 1e-6) where that is below 1 (clip_grad_norm_).
void clip_to_norm(const GradChunk* chunks, int count, const float* sum_squares, float max_norm, cudaStream_t stream);

// ---- layers ----
// y[i] += bias[(i / inner) % channels] (bias may be null), then max(y, 0) when relu: the epilogue of a
// linear layer (inner = 1) or a convolution (inner = height * width).
void bias_relu(float* y, const float* bias, int64_t n, int64_t channels, int64_t inner, bool relu,
               cudaStream_t stream);
// out[i] = y[i] > 0 ? dy[i] : 0: the gradient through a ReLU folded into the layer before it.
void relu_mask(const float* dy, const float* y, float* out, int64_t n, cudaStream_t stream);
// out[i] = a[i] + b[i], then max(out, 0) when relu: a residual block's two paths joined (with its folded
// ReLU), or its input gradient summed from both paths. out may be a or b.
void add(const float* a, const float* b, float* out, int64_t n, bool relu, cudaStream_t stream);
// Global average pooling of [planes, plane] (x) into [planes] (y), each the plane's sum times 1/plane as on
// the CPU; its backward spreads dy[p] / plane over plane p of dx.
void plane_mean(const float* x, float* y, int64_t planes, int64_t plane, cudaStream_t stream);
void plane_mean_backward(const float* dy, float* dx, int64_t planes, int64_t plane, cudaStream_t stream);

// ---- sync batchnorm (nn/cuda/batchnorm.cpp): tensors viewed as [n, channels, spatial] ----
// Per-channel sums in two stages through `scratch` (batchnorm_scratch_doubles(...) doubles), in a fixed
// order: the same input gives bitwise the same sums. They land in sums[0..2 * channels), the CPU layer's
// layout: channel c's first sum at c, its second at channels + c.
size_t batchnorm_scratch_doubles(int64_t n, int64_t channels, int64_t spatial);
// Sums of d = x - shift and of d^2, where shift = float(totals[c] / count) (the global mean of a first pass
// when totals is not null) or 0.
void batchnorm_moments(const float* x, int64_t n, int64_t channels, int64_t spatial, const double* totals,
                       double count, double* scratch, double* sums, cudaStream_t stream);
// From the replicas' sums of both passes (totals: the first's sums of x; sums: the second's moments) over
// `count` values: mean[c], inv_std[c] = 1 / sqrt(var + eps) with the biased variance, and the running
// statistics updated with momentum and the unbiased variance (var * count / (count - 1)).
void batchnorm_statistics(const double* totals, const double* sums, double count, int64_t channels, float eps,
                          float momentum, float* mean, float* inv_std, float* running_mean, float* running_var,
                          cudaStream_t stream);
// y = gamma * (x - mean) * inv_std + beta, clamped at 0 when relu (a folded ReLU).
void batchnorm_normalize(const float* x, const float* mean, const float* inv_std, const float* gamma,
                         const float* beta, float* y, int64_t n, int64_t channels, int64_t spatial, bool relu,
                         cudaStream_t stream);
// Sums of g and of g * xhat, where g = dy (0 where y <= 0 when y is not null: a folded ReLU's output) and
// xhat = (x - mean) * inv_std.
void batchnorm_gradient_sums(const float* x, const float* dy, const float* y, const float* mean,
                             const float* inv_std, int64_t n, int64_t channels, int64_t spatial, double* scratch,
                             double* sums, cudaStream_t stream);
// gamma_grad[c] += sums[channels + c] (the sum of g * xhat), beta_grad[c] += sums[c] (the sum of g).
void batchnorm_parameter_gradients(const double* sums, int64_t channels, float* gamma_grad, float* beta_grad,
                                   cudaStream_t stream);
// dx = gamma * inv_std / count * (count * g - sum_g - xhat * sum_g_xhat), with g and xhat as above and the
// sums (those of every replica) in batchnorm_gradient_sums' layout.
void batchnorm_input_gradient(const float* x, const float* dy, const float* y, const float* mean,
                              const float* inv_std, const float* gamma, const double* sums, float count, float* dx,
                              int64_t n, int64_t channels, int64_t spatial, cudaStream_t stream);

// param: LeakyReLU's negative slope (>= 0) or ELU's alpha; unused by the others.
enum class Activation { relu, tanh, sigmoid, leaky_relu, elu, gelu };
void activation_forward(Activation kind, float param, const float* x, float* y, int64_t n, cudaStream_t stream);
// dx from dy and what forward saved: its output y (every derivative but GELU's is a function of y), or GELU's
// input x.
void activation_backward(Activation kind, float param, const float* saved, const float* dy, float* dx, int64_t n,
                         cudaStream_t stream);

// Inverted dropout with the mask of counter_uniform(seed, call, i) < p: y = x * (keep ? 1/(1-p) : 0).
// Backward is the same function of dy. y may be x. Attention's dropout (nn/cuda/attention.cpp) runs it over
// [batch, heads, T, T] probabilities, whose flat index is the CPU's mask counter ((b * H + h) * T + i) * T + j.
void dropout(const float* x, float* y, int64_t n, float p, uint64_t seed, uint64_t call, cudaStream_t stream);

// ---- the GPT layers (kernels/transformer.cu) ----
// Embedding: y[r] = token[ids[r]] + position[r % time] over `rows` token positions of `channels` values; the
// ids (floats, as the model reads them) are copied to `ids` for backward. An id that is not an integer in
// [0, vocabulary) gives zeros and its row goes to *first_bad (atomicMin: the caller sets it to UINT_MAX
// first and reads it back).
void embedding_forward(const float* x, const float* token, const float* position, float* ids, float* y, int64_t rows,
                       int64_t time, int64_t channels, int64_t vocabulary, unsigned* first_bad, cudaStream_t stream);
// dtoken[ids[r]] += dy[r] (atomics: ids repeat), dposition[t] += the sum over the batch of dy[b, t].
void embedding_backward(const float* dy, const float* ids, float* dtoken, float* dposition, int64_t batch, int64_t time,
                        int64_t channels, cudaStream_t stream);
// LayerNorm over rows of `channels`: y = (x - mean) * inv_std * weight + bias, with each row's mean and
// inv_std = 1 / sqrt(var + eps) (biased variance) saved for backward.
void layernorm_forward(const float* x, const float* weight, const float* bias, float* y, float* mean, float* inv_std,
                       int64_t rows, int64_t channels, float eps, cudaStream_t stream);
// Backward's scratch for the parameter gradients' partial sums.
size_t layernorm_scratch_floats(int64_t rows, int64_t channels);
// dweight += sum over rows of dy * xhat, dbias += sum of dy (in a fixed order), and dx (skipped when null) =
// (g - mean(g) - xhat * mean(g * xhat)) * inv_std with g = dy * weight.
void layernorm_backward(const float* x, const float* dy, const float* weight, const float* mean, const float* inv_std,
                        float* dx, float* dweight, float* dbias, float* scratch, int64_t rows, int64_t channels,
                        cudaStream_t stream);
// Causal attention over `rows` rows of [time, time] score matrices (row r is query r % time): in place, the
// softmax over keys 0..i and zeros after them.
void causal_softmax(float* scores, int64_t rows, int64_t time, cudaStream_t stream);
// In place: grad_ij = probs_ij (grad_ij - sum_k probs_ik grad_ik) * scale for j <= i, 0 after: the scores'
// gradient from the probabilities' (already through attention dropout's mask), times the scores' scale.
void causal_softmax_backward(const float* probs, float* grad, int64_t rows, int64_t time, float scale,
                             cudaStream_t stream);

// ---- losses ----
// Per row r: probs = softmax(logits[r]), row_loss[r] = -sum_j target_j log probs[j], row_hit[r] = argmax ==
// label, where target = (1 - smoothing) * onehot(label) + smoothing / classes (nn/loss.hpp).
void softmax_cross_entropy(const float* logits, const int32_t* labels, float* probs, double* row_loss,
                           double* row_hit, int64_t rows, int64_t classes, float smoothing, cudaStream_t stream);
// grad = k * (probs - target), the same target.
void softmax_cross_entropy_grad(const float* probs, const int32_t* labels, float* grad, int64_t rows, int64_t classes,
                                float k, float smoothing, cudaStream_t stream);
// diff = out - target; per row the mean squared and mean absolute difference.
void squared_error(const float* out, const float* target, float* diff, double* row_sq, double* row_abs, int64_t rows,
                   int64_t cols, cudaStream_t stream);
void scale(const float* x, float* y, int64_t n, float k, cudaStream_t stream);  // y = k * x
// sums[0] += sum(a), sums[1] += sum(b), in one block and a fixed order (the same result every run).
void accumulate_sums(const double* a, const double* b, int64_t n, double* sums, cudaStream_t stream);

// ---- optimizers: one launch updates every parameter ----
// A parameter tensor's slice [begin, end) with its gradient and state (s1, s2 may be null when unused), and
// the L1 penalty's factor for it (OptimizerConfig::l1 on kernels, 0 on the other parameters), and AdamW's
// decoupled decay for it (OptimizerConfig::weight_decay on kernels with AdamW, else 0: w *= 1 - lr * decay).
struct ParamChunk {
  float* w;
  const float* g;
  float* s1;
  float* s2;
  int64_t begin, end;
  float l1;
  float decoupled_decay;
};
// Each optimizer reads `skip` (a device float, may be null) first and leaves everything as it is when it
// is not 0: the step's gradients were not finite (NonfiniteStatus::skip).
struct SgdArgs {
  float lr, momentum, weight_decay;
  bool nesterov;
  const float* skip;
};
// Adam's bias corrections 1 - beta^t count the updates applied, which only the device knows once steps
// can be skipped there: t = *steps + 1, and count_step advances *steps after the update. AdamW: the chunks'
// decoupled_decay, and weight_decay (the coupled one) 0.
struct AdamArgs {
  float lr, beta1, beta2, eps, weight_decay;
  const long long* steps;
  const float* skip;
};
struct RmspropArgs {
  float lr, alpha, eps, weight_decay, momentum;
  const float* skip;
};
// chunks: a device array of `count` ParamChunk, one block each.
void sgd_step(const ParamChunk* chunks, int count, SgdArgs args, cudaStream_t stream);
void adam_step(const ParamChunk* chunks, int count, AdamArgs args, cudaStream_t stream);
void rmsprop_step(const ParamChunk* chunks, int count, RmspropArgs args, cudaStream_t stream);
// ++*steps unless the update was skipped.
void count_step(long long* steps, const float* skip, cudaStream_t stream);

}  // namespace ringtrain::kernels
