// Element-wise activations: ReLU, Tanh, Sigmoid. Backward uses the saved output (all three derivatives
// are functions of y), so the input need not outlive forward.
#pragma once
#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

enum class ActivationKind { relu, tanh, sigmoid };

class Activation : public Layer {
 public:
  explicit Activation(ActivationKind kind) : act_(kind) {}
  std::string kind() const override;
  std::string spec() const override { return kind(); }
  Shape build(const Shape& sample_in, Rng&) override { return sample_in; }
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&y_}}; }
  // The previous layer applies this ReLU itself (Layer::fold_relu); this layer passes values through.
  void set_folded() { folded_ = true; }
  bool folded() const { return folded_; }
  ActivationKind activation() const { return act_; }

 private:
  ActivationKind act_;
  bool folded_ = false;
  Tensor y_, dx_;
};

}  // namespace ringtrain
