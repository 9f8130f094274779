// Fully connected layer y = x W^T + b, W stored [out, in] as in PyTorch. Inputs of any rank are read as
// [batch, features].
#pragma once
#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

class Linear : public Layer {
 public:
  Linear(int64_t out_features, bool bias) : out_(out_features), has_bias_(bias) {}
  std::string kind() const override { return "linear"; }
  std::string spec() const override;
  Shape build(const Shape& sample_in, Rng& rng) override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&y_}, {}, {}}; }
  std::vector<Param*> params() override;
  double flops_per_sample() const override { return 6.0 * static_cast<double>(in_ * out_); }
  bool fold_relu() override { return relu_ = true; }

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  bool has_bias() const { return has_bias_; }
  bool relu_folded() const { return relu_; }

 private:
  int64_t in_ = 0, out_;
  bool has_bias_, relu_ = false;
  Param weight_{"weight", {}, {}, true}, bias_{"bias", {}, {}};
  const Tensor* x_ = nullptr;
  Tensor y_, dx_, dy_relu_;  // dy_relu_: the incoming gradient masked by a folded ReLU
};

}  // namespace ringtrain
