#include "ringtrain/nn/activation.hpp"

#include <algorithm>
#include <cmath>

namespace ringtrain {

// Element-wise loops stay on one thread: they are memory-bound and short next to the GEMMs, and written
// branch-free (select instead of if) so that they vectorise.
std::string Activation::kind() const {
  switch (act_) {
    case ActivationKind::relu: return "relu";
    case ActivationKind::tanh: return "tanh";
    case ActivationKind::sigmoid: return "sigmoid";
  }
  return "";
}

const Tensor& Activation::forward(const Tensor& x, Mode) {
  if (folded_) return x;
  y_.resize(x.shape());
  const int64_t n = x.numel();
  const float* __restrict in = x.data();
  float* __restrict out = y_.data();
  switch (act_) {
    case ActivationKind::relu:
      for (int64_t i = 0; i < n; ++i) out[i] = std::max(in[i], 0.0f);
      break;
    case ActivationKind::tanh:
      for (int64_t i = 0; i < n; ++i) out[i] = std::tanh(in[i]);
      break;
    case ActivationKind::sigmoid:
      for (int64_t i = 0; i < n; ++i) out[i] = 1.0f / (1.0f + std::exp(-in[i]));
      break;
  }
  return y_;
}

const Tensor& Activation::backward(const Tensor& dy) {
  if (folded_) return dy;
  if (!input_grad_needed_) return dx_;
  dx_.resize(dy.shape());
  const int64_t n = dy.numel();
  const float* __restrict y = y_.data();
  const float* __restrict g = dy.data();
  float* __restrict dx = dx_.data();
  switch (act_) {
    case ActivationKind::relu:
      for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > 0.0f ? g[i] : 0.0f;
      break;
    case ActivationKind::tanh:
      for (int64_t i = 0; i < n; ++i) dx[i] = g[i] * (1.0f - y[i] * y[i]);
      break;
    case ActivationKind::sigmoid:
      for (int64_t i = 0; i < n; ++i) dx[i] = g[i] * y[i] * (1.0f - y[i]);
      break;
  }
  return dx_;
}

}  // namespace ringtrain
