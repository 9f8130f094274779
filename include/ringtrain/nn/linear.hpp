// Fully connected layer y = x W^T + b, W stored [out, in] as in PyTorch. Inputs of any rank are read as
// [batch, features]; a per-token layer instead maps the last dimension of [T, C] to [T, out] (each token a row
// of the same GEMM), and initialises as GPT-2's (weights N(0, 0.02), biases 0). A tied layer (GPT-2's output
// head) owns no weight: it reads the model's embedding token table [out, C] (Layer::tie).
#pragma once
#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

class Linear : public Layer {
 public:
  Linear(int64_t out_features, bool bias) : Linear(out_features, bias, false, false) {}
  // tied requires per_token.
  Linear(int64_t out_features, bool bias, bool per_token, bool tied);
  std::string kind() const override { return "linear"; }
  std::string spec() const override;
  Shape build(const Shape& sample_in, Rng& rng) override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&y_}, {}, {}}; }
  // Without the tied weight, which its owner lists.
  std::vector<Param*> params() override;
  double flops_per_sample() const override { return 6.0 * static_cast<double>(rows_ * in_ * out_); }
  bool fold_relu() override { return relu_ = true; }
  Shape tied_weight_shape() const override;
  void tie(Param* source) override { tied_ = source; }

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  bool has_bias() const { return has_bias_; }
  bool relu_folded() const { return relu_; }
  bool per_token() const { return per_token_; }
  bool tied() const { return tied_flag_; }
  // The weight the layer multiplies by: its own, or the tied one (null before Model links it).
  Param* weight() { return tied_flag_ ? tied_ : &weight_; }
  // Rows of the GEMM per sample: T for a per-token layer on [T, C], else 1.
  int64_t rows_per_sample() const { return rows_; }

 private:
  int64_t in_ = 0, out_, rows_ = 1;
  bool has_bias_, per_token_, tied_flag_, relu_ = false;
  Param weight_{"weight", {}, {}, true}, bias_{"bias", {}, {}};
  Param* tied_ = nullptr;
  const Tensor* x_ = nullptr;
  Tensor y_, dx_, dy_relu_;  // dy_relu_: the incoming gradient masked by a folded ReLU
};

}  // namespace ringtrain
