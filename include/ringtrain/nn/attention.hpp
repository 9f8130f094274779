// Causal multi-head self-attention over [T, C] (nanoGPT's CausalSelfAttention): qkv = x W_qkv^T + b_qkv
// (W_qkv [3C, C], rows q, then k, then v; each split into H heads of C/H channels), per head
// att = softmax(q k^T / sqrt(C/H)) with position t attending to positions <= t only, dropout p on att in
// training, y = att v, heads side by side, out = y W_proj^T + b_proj.
// The attention dropout's mask is counter-based as Dropout's: element (b, h, i, j) of the c-th training
// forward is dropped when counter_uniform(seed, c, ((b * H + h) * T + i) * T + j) < p.
#pragma once
#include <cstdint>
#include <vector>

#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

class Attention : public Layer {
 public:
  Attention(int64_t heads, float dropout) : heads_(heads), p_(dropout) {}
  std::string kind() const override { return "attention"; }
  std::string spec() const override;
  // Takes [T, C] with H dividing C. Weights N(0, 0.02) as GPT-2's, biases 0. Forward also takes windows
  // shorter than T (a causal model's first positions do not depend on the later ones).
  Shape build(const Shape& sample_in, Rng& rng) override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&qkv_, &att_, &heads_out_, &y_}, {}, {&forward_call_}}; }
  std::vector<Param*> params() override { return {&qkv_weight_, &qkv_bias_, &proj_weight_, &proj_bias_}; }
  std::vector<uint64_t*> random_streams() override { return {&calls_}; }
  double flops_per_sample() const override;

  int64_t heads() const { return heads_; }
  float dropout() const { return p_; }
  uint64_t seed() const { return seed_; }
  int64_t time() const { return time_; }
  int64_t channels() const { return channels_; }

 private:
  // One (sample, head) pair's attention forward and backward, on this thread's scratch.
  void head_forward(int64_t b, int64_t h, bool drop);
  void head_backward(int64_t b, int64_t h, const float* dheads, bool drop);
  // att's row i, dropped and scaled as forward used it, into `out` (the first i + 1 entries).
  void dropped_row(const float* att_row, int64_t b, int64_t h, int64_t i, float* out) const;

  int64_t heads_;
  float p_;
  int64_t time_ = 0, channels_ = 0, head_dim_ = 0;
  int64_t pass_time_ = 0;  // T of the pass under way: time_, or fewer (generation's shorter prompts)
  uint64_t seed_ = 0, calls_ = 0;
  uint64_t forward_call_ = 0;  // the mask stream of the forward that backward follows
  bool dropped_ = false;       // whether that forward dropped (training, p > 0)
  Param qkv_weight_{"qkv_weight", {}, {}, true}, qkv_bias_{"qkv_bias", {}, {}};
  Param proj_weight_{"proj_weight", {}, {}, true}, proj_bias_{"proj_bias", {}, {}};
  const Tensor* x_ = nullptr;
  Tensor qkv_;        // [batch, T, 3C]
  Tensor att_;        // [batch, H, T, T] softmax probabilities before dropout; 0 above the diagonal
  Tensor heads_out_;  // [batch, T, C]: att v, heads side by side
  Tensor y_, dx_, dheads_, dqkv_;
  std::vector<Tensor> scratch_;  // per thread: [T, T] for a dropped att or a head's score gradient
};

}  // namespace ringtrain
