// Causal self-attention on the GPU (CudaAttention, cuda_layers.hpp). Per sample b, each product runs over
// the H heads as one strided-batched GEMM: a head's q, k or v is a [T, D] matrix inside the [T, 3C] qkv rows
// (ld 3C, the next head D floats on), its output a [T, D] matrix inside [T, C] (ld C), its probabilities a
// [T, T] matrix of att (the next head T * T on). Samples are T * 3C apart and heads D apart, so no one stride
// walks both: a loop over the samples.
#include <cmath>

#include "cuda_layers.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain::cuda {

CudaAttention::CudaAttention(Attention& source)
    : CudaLayer(source),
      heads_(source.heads()),
      time_(source.time()),
      channels_(source.channels()),
      head_dim_(source.channels() / source.heads()),
      p_(source.dropout()),
      seed_(source.seed()),
      calls_(*source.random_streams().front()) {
  const std::vector<Param*> p = source.params();
  qkv_weight_ = to_device(*p[0]);
  qkv_bias_ = to_device(*p[1]);
  proj_weight_ = to_device(*p[2]);
  proj_bias_ = to_device(*p[3]);
}

namespace {

// Sample b's heads of one part (0: q, 1: k, 2: v) of qkv [batch, T, 3C], or of its gradient.
Strided qkv_heads(const float* qkv, int64_t b, int part, int64_t t_len, int64_t c, int64_t d) {
  return {qkv + b * t_len * 3 * c + part * c, 3 * c, d};
}

}  // namespace

float* CudaAttention::scratch_like_att(DeviceBuffer& scratch) const {
  return static_cast<float*>(scratch.reserve(sizeof(float) * static_cast<size_t>(att_.numel())));
}

const float* CudaAttention::dropped_probabilities(DeviceBuffer& scratch) const {
  if (!dropped_) return att_.data();
  float* dropped = scratch_like_att(scratch);
  kernels::dropout(att_.data(), dropped, att_.numel(), p_, seed_, forward_call_, stream());
  return dropped;
}

const Tensor& CudaAttention::forward(const Tensor& x, Mode mode) {
  x_ = &x;
  const int64_t batch = x.dim(0), t_len = x.dim(1), c = channels_, h = heads_, d = head_dim_, rows = batch * t_len;
  if (t_len > time_)  // shorter windows pass (generation's prompts), as on the CPU
    throw Error("attention built for " + std::to_string(time_) + " tokens got " + std::to_string(t_len));
  dropped_ = mode == Mode::train && p_ > 0.0f;
  if (dropped_) forward_call_ = calls_++;
  qkv_.resize({batch, t_len, 3 * c});
  qkv_map_.forward(x.data(), rows, qkv_weight_, &qkv_bias_, false, qkv_.data());
  att_.resize({batch, h, t_len, t_len});
  const int64_t square = t_len * t_len;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  for (int64_t b = 0; b < batch; ++b)  // scores = q k^T / sqrt(D)
    gemm_batched(false, true, t_len, t_len, d, scale, qkv_heads(qkv_.data(), b, 0, t_len, c, d),
                 qkv_heads(qkv_.data(), b, 1, t_len, c, d), 0.0f, att_.data() + b * h * square, t_len, square, h);
  kernels::causal_softmax(att_.data(), batch * h * t_len, t_len, stream());
  DeviceBuffer scratch;
  const float* probs = dropped_probabilities(scratch);
  heads_out_.resize({batch, t_len, c});
  for (int64_t b = 0; b < batch; ++b)  // out = att v
    gemm_batched(false, false, t_len, d, t_len, 1.0f, {probs + b * h * square, t_len, square},
                 qkv_heads(qkv_.data(), b, 2, t_len, c, d), 0.0f, heads_out_.data() + b * t_len * c, c, d, h);
  y_.resize({batch, t_len, c});
  proj_map_.forward(heads_out_.data(), rows, proj_weight_, &proj_bias_, false, y_.data());
  return y_;
}

// As the CPU layer: with P the (dropped) probabilities and dO a head's output gradient, dV = P^T dO and
// dP = dO V^T; through the mask and the softmax to the scores' gradient dS (scaled by 1/sqrt(D) as the scores
// were); dQ = dS K, dK = dS^T Q.
const Tensor& CudaAttention::backward(const Tensor& dy) {
  // T from dy: a pipeline runs an earlier micro-batch's backward after later forwards.
  const int64_t batch = dy.dim(0), t_len = dy.dim(1), c = channels_, h = heads_, d = head_dim_, rows = batch * t_len;
  const int64_t square = t_len * t_len;
  dheads_.resize({batch, t_len, c});
  proj_map_.backward(dy.data(), heads_out_.data(), rows, proj_weight_, &proj_bias_, dheads_.data());
  dqkv_.resize({batch, t_len, 3 * c});
  DeviceBuffer scratch;
  const float* probs = dropped_probabilities(scratch);  // in scratch when dropped: used up before dP overwrites it
  for (int64_t b = 0; b < batch; ++b)  // dV = P^T dO
    gemm_batched(true, false, t_len, d, t_len, 1.0f, {probs + b * h * square, t_len, square},
                 {dheads_.data() + b * t_len * c, c, d}, 0.0f, dqkv_.data() + b * t_len * 3 * c + 2 * c, 3 * c, d, h);
  float* grad = scratch_like_att(scratch);
  for (int64_t b = 0; b < batch; ++b)  // dP = dO V^T
    gemm_batched(false, true, t_len, t_len, d, 1.0f, {dheads_.data() + b * t_len * c, c, d},
                 qkv_heads(qkv_.data(), b, 2, t_len, c, d), 0.0f, grad + b * h * square, t_len, square, h);
  if (dropped_) kernels::dropout(grad, grad, att_.numel(), p_, seed_, forward_call_, stream());
  kernels::causal_softmax_backward(att_.data(), grad, batch * h * t_len, t_len,
                                   1.0f / std::sqrt(static_cast<float>(d)), stream());
  for (int64_t b = 0; b < batch; ++b) {
    const Strided ds{grad + b * h * square, t_len, square};
    float* dqkv = dqkv_.data() + b * t_len * 3 * c;
    gemm_batched(false, false, t_len, d, t_len, 1.0f, ds, qkv_heads(qkv_.data(), b, 1, t_len, c, d), 0.0f, dqkv,
                 3 * c, d, h);  // dQ = dS K
    gemm_batched(true, false, t_len, d, t_len, 1.0f, ds, qkv_heads(qkv_.data(), b, 0, t_len, c, d), 0.0f, dqkv + c,
                 3 * c, d, h);  // dK = dS^T Q
  }
  if (input_grad_needed_) dx_.resize(x_->shape());
  qkv_map_.backward(dqkv_.data(), x_->data(), rows, qkv_weight_, &qkv_bias_,
                    input_grad_needed_ ? dx_.data() : nullptr);
  return dx_;
}

}  // namespace ringtrain::cuda
