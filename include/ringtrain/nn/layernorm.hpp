// Layer normalisation over the last dimension (PyTorch's nn.LayerNorm(C)): each row of C values is
// normalised by its own mean and variance (biased, over C), then scaled by `weight` and shifted by `bias`.
#pragma once
#include <cstdint>

#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

class LayerNorm : public Layer {
 public:
  explicit LayerNorm(float eps = 1e-5f) : eps_(eps) {}
  std::string kind() const override { return "layernorm"; }
  std::string spec() const override;
  Shape build(const Shape& sample_in, Rng& rng) override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  // Backward reads the input (the previous layer's output) and each row's mean and 1/std.
  ForwardState forward_state() override { return {{&y_, &mean_, &inv_std_}}; }
  std::vector<Param*> params() override { return {&weight_, &bias_}; }
  double flops_per_sample() const override { return 12.0 * static_cast<double>(sample_numel_); }

  float eps() const { return eps_; }
  int64_t channels() const { return channels_; }

 private:
  float eps_;
  int64_t channels_ = 0, sample_numel_ = 0;
  Param weight_{"weight", {}, {}}, bias_{"bias", {}, {}};
  const Tensor* x_ = nullptr;
  Tensor y_, mean_, inv_std_, dx_;  // mean_, inv_std_: [rows]
};

}  // namespace ringtrain
