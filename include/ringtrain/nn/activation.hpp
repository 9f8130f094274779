// Element-wise activations, as PyTorch's: ReLU, Tanh, Sigmoid, LeakyReLU(negative_slope), ELU(alpha) and
// GELU (the exact one, with erf). Backward uses the saved output where the derivative is a function of it
// (all but GELU), so the input need not outlive forward; GELU keeps its input.
#pragma once
#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

enum class ActivationKind { relu, tanh, sigmoid, leaky_relu, elu, gelu };

class Activation : public Layer {
 public:
  // param: LeakyReLU's negative slope in [0, 1], or ELU's alpha (> 0); unused by the others.
  explicit Activation(ActivationKind kind, float param = 0.0f) : act_(kind), param_(param) {}
  std::string kind() const override;
  std::string spec() const override;
  Shape build(const Shape& sample_in, Rng&) override { return sample_in; }
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  // The output is the next layer's input, which its backward reads; GELU's backward reads its input too.
  ForwardState forward_state() override {
    return act_ == ActivationKind::gelu ? ForwardState{{&x_, &y_}} : ForwardState{{&y_}};
  }
  // The previous layer applies this ReLU itself (Layer::fold_relu); this layer passes values through.
  void set_folded() { folded_ = true; }
  bool folded() const { return folded_; }
  ActivationKind activation() const { return act_; }
  float param() const { return param_; }

 private:
  ActivationKind act_;
  float param_;
  bool folded_ = false;
  Tensor x_, y_, dx_;  // x_: GELU's input, the only one whose derivative needs it
};

}  // namespace ringtrain
