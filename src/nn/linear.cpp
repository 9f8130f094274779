#include "ringtrain/nn/linear.hpp"

#include <algorithm>
#include <cmath>

#include "ringtrain/nn/init.hpp"
#include "ringtrain/tensor/blas.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

Linear::Linear(int64_t out_features, bool bias, bool per_token, bool tied)
    : out_(out_features), has_bias_(bias), per_token_(per_token), tied_flag_(tied) {
  if (tied && !per_token) throw Error("linear: tied=1 needs per_token=1 (the embedding's table maps tokens)");
}

std::string Linear::spec() const {
  return "linear(" + std::to_string(out_) + (has_bias_ ? "" : ",bias=0") + (per_token_ ? ",per_token=1" : "") +
         (tied_flag_ ? ",tied=1" : "") + ")";
}

Shape Linear::tied_weight_shape() const {
  if (!tied_flag_) return {};
  return {out_, in_};
}

Shape Linear::build(const Shape& sample_in, Rng& rng) {
  Shape out_shape{out_};
  if (per_token_) {
    if (sample_in.size() < 2)
      throw Error("linear(per_token=1) maps the last dimension of [T, C], got " + shape_str(sample_in));
    in_ = sample_in.back();
    rows_ = shape_numel(sample_in) / in_;
    out_shape = sample_in;
    out_shape.back() = out_;
  } else {
    in_ = shape_numel(sample_in);
  }
  // The weight first: a layer too large for memory fails there at once, before its bias's zeroed pages cost
  // seconds of a machine that has only just enough for them.
  if (!tied_flag_) {
    weight_.value = Tensor({out_, in_});
    weight_.grad = Tensor({out_, in_});
  }
  if (has_bias_) {
    bias_.value = Tensor({out_});
    bias_.grad = Tensor({out_});
  }
  if (per_token_) {
    // GPT-2's: weights N(0, 0.02), biases 0.
    if (!tied_flag_) fill_normal(weight_.value, 0.02f, rng);
    return out_shape;
  }
  // PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
  const float bound = 1.0f / std::sqrt(static_cast<float>(in_));
  for (int64_t i = 0; i < weight_.value.numel(); ++i) weight_.value[i] = rng.uniform(-bound, bound);
  if (has_bias_)
    for (int64_t i = 0; i < out_; ++i) bias_.value[i] = rng.uniform(-bound, bound);
  return out_shape;
}

const Tensor& Linear::forward(const Tensor& x, Mode) {
  x_ = &x;
  const int64_t n = x.numel() / in_;  // GEMM rows: samples, or samples x tokens
  Shape out_shape = x.shape();
  if (per_token_) {
    out_shape.back() = out_;
  } else {
    out_shape = {x.dim(0), out_};
  }
  y_.resize(out_shape);
  float* y = y_.data();
  if (has_bias_) {
    const float* b = bias_.value.data();
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < out_; ++j) y[r * out_ + j] = b[j];
  }
  gemm(Trans::no, Trans::yes, n, out_, in_, 1.0f, x.data(), in_, weight()->value.data(), in_,
       has_bias_ ? 1.0f : 0.0f, y, out_);
  if (relu_)
    for (int64_t i = 0; i < n * out_; ++i) y[i] = std::max(y[i], 0.0f);
  return y_;
}

const Tensor& Linear::backward(const Tensor& incoming) {
  const int64_t n = incoming.numel() / out_;
  if (relu_) {
    dy_relu_.resize(incoming.shape());
    for (int64_t i = 0; i < n * out_; ++i) dy_relu_[i] = y_[i] > 0.0f ? incoming[i] : 0.0f;
  }
  const Tensor& dy = relu_ ? dy_relu_ : incoming;
  Param& w = *weight();  // a tied weight's gradient is its owner's, which this adds into
  gemm(Trans::yes, Trans::no, out_, in_, n, 1.0f, dy.data(), out_, x_->data(), in_, 1.0f, w.grad.data(), in_);
  if (has_bias_) {
    float* db = bias_.grad.data();
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < out_; ++j) db[j] += dy[r * out_ + j];
  }
  if (!input_grad_needed_) return dx_;
  dx_.resize(x_->shape());
  gemm(Trans::no, Trans::no, n, in_, out_, 1.0f, dy.data(), out_, w.value.data(), in_, 0.0f, dx_.data(), in_);
  return dx_;
}

std::vector<Param*> Linear::params() {
  std::vector<Param*> out;
  if (!tied_flag_) out.push_back(&weight_);
  if (has_bias_) out.push_back(&bias_);
  return out;
}

}  // namespace ringtrain
