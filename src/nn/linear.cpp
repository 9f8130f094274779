#include "ringtrain/nn/linear.hpp"

#include <algorithm>
#include <cmath>

#include "ringtrain/tensor/blas.hpp"

namespace ringtrain {

std::string Linear::spec() const {
  return "linear(" + std::to_string(out_) + (has_bias_ ? "" : ",bias=0") + ")";
}

Shape Linear::build(const Shape& sample_in, Rng& rng) {
  in_ = shape_numel(sample_in);
  // PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
  const float bound = 1.0f / std::sqrt(static_cast<float>(in_));
  weight_.value = Tensor({out_, in_});
  weight_.grad = Tensor({out_, in_});
  for (int64_t i = 0; i < weight_.value.numel(); ++i) weight_.value[i] = rng.uniform(-bound, bound);
  if (has_bias_) {
    bias_.value = Tensor({out_});
    bias_.grad = Tensor({out_});
    for (int64_t i = 0; i < out_; ++i) bias_.value[i] = rng.uniform(-bound, bound);
  }
  return {out_};
}

const Tensor& Linear::forward(const Tensor& x, Mode) {
  x_ = &x;
  const int64_t n = x.dim(0);
  y_.resize({n, out_});
  float* y = y_.data();
  if (has_bias_) {
    const float* b = bias_.value.data();
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < out_; ++j) y[r * out_ + j] = b[j];
  }
  gemm(Trans::no, Trans::yes, n, out_, in_, 1.0f, x.data(), in_, weight_.value.data(), in_,
       has_bias_ ? 1.0f : 0.0f, y, out_);
  if (relu_)
    for (int64_t i = 0; i < n * out_; ++i) y[i] = std::max(y[i], 0.0f);
  return y_;
}

const Tensor& Linear::backward(const Tensor& incoming) {
  const int64_t n = incoming.dim(0);
  if (relu_) {
    dy_relu_.resize(incoming.shape());
    for (int64_t i = 0; i < n * out_; ++i) dy_relu_[i] = y_[i] > 0.0f ? incoming[i] : 0.0f;
  }
  const Tensor& dy = relu_ ? dy_relu_ : incoming;
  gemm(Trans::yes, Trans::no, out_, in_, n, 1.0f, dy.data(), out_, x_->data(), in_, 1.0f, weight_.grad.data(),
       in_);
  if (has_bias_) {
    float* db = bias_.grad.data();
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < out_; ++j) db[j] += dy[r * out_ + j];
  }
  if (!input_grad_needed_) return dx_;
  dx_.resize(x_->shape());
  gemm(Trans::no, Trans::no, n, in_, out_, 1.0f, dy.data(), out_, weight_.value.data(), in_, 0.0f, dx_.data(), in_);
  return dx_;
}

std::vector<Param*> Linear::params() {
  if (has_bias_) return {&weight_, &bias_};
  return {&weight_};
}

}  // namespace ringtrain
