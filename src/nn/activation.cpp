#include "ringtrain/nn/activation.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numbers>

#include "exp_nonpositive.hpp"
#include "ringtrain/tensor/cpu_features.hpp"

namespace ringtrain {

namespace {

// erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7, float's own rounding at erf's scale).
float erf_approx(float x) {
  const float a = std::fabs(x), t = 1.0f / (1.0f + 0.3275911f * a);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float y = 1.0f - p * t * exp_nonpositive(-a * a);
  return x < 0.0f ? -y : y;
}

// GELU(x) = x Phi(x), with Phi the standard normal CDF; its derivative Phi(x) + x phi(x).
float gelu(float x) { return 0.5f * x * (1.0f + erf_approx(x * std::numbers::sqrt2_v<float> * 0.5f)); }
float gelu_derivative(float x) {
  const float cdf = 0.5f * (1.0f + erf_approx(x * std::numbers::sqrt2_v<float> * 0.5f));
  const float pdf = exp_nonpositive(-0.5f * x * x) * (std::numbers::inv_sqrtpi_v<float> * std::numbers::sqrt2_v<float> * 0.5f);
  return cdf + x * pdf;
}

}  // namespace

// Element-wise loops, written branch-free (select instead of if) so that they vectorise, over chunks spread
// across the threads (for_each_chunk).
std::string Activation::kind() const {
  switch (act_) {
    case ActivationKind::relu: return "relu";
    case ActivationKind::tanh: return "tanh";
    case ActivationKind::sigmoid: return "sigmoid";
    case ActivationKind::leaky_relu: return "leakyrelu";
    case ActivationKind::elu: return "elu";
    case ActivationKind::gelu: return "gelu";
  }
  return "";
}

std::string Activation::spec() const {
  if (act_ != ActivationKind::leaky_relu && act_ != ActivationKind::elu) return kind();
  char text[48];
  std::snprintf(text, sizeof text, "%s(%.9g)", kind().c_str(), static_cast<double>(param_));
  return text;
}

const Tensor& Activation::forward(const Tensor& x, Mode) {
  if (folded_) return x;
  y_.resize(x.shape());
  const int64_t n = x.numel();
  if (act_ == ActivationKind::gelu) x_.copy_from(x);  // its derivative needs x, which y does not give back
  for_each_chunk(n, [&](int64_t begin, int64_t end) {
    // Locals, not the lambda's captured references, which a loop may reload on every element (residual.cpp).
    const float* __restrict in = x.data();
    float* __restrict out = y_.data();
    const float a = param_;
    switch (act_) {
      case ActivationKind::relu:
        for (int64_t i = begin; i < end; ++i) out[i] = std::max(in[i], 0.0f);
        break;
      case ActivationKind::tanh:
        for (int64_t i = begin; i < end; ++i) out[i] = std::tanh(in[i]);
        break;
      case ActivationKind::sigmoid:
        for (int64_t i = begin; i < end; ++i) out[i] = 1.0f / (1.0f + std::exp(-in[i]));
        break;
      case ActivationKind::leaky_relu:
        for (int64_t i = begin; i < end; ++i) out[i] = in[i] > 0.0f ? in[i] : a * in[i];
        break;
      case ActivationKind::elu:
        for (int64_t i = begin; i < end; ++i) out[i] = in[i] > 0.0f ? in[i] : a * std::expm1(in[i]);
        break;
      case ActivationKind::gelu:
        for (int64_t i = begin; i < end; ++i) out[i] = gelu(in[i]);
        break;
    }
  });
  return y_;
}

const Tensor& Activation::backward(const Tensor& dy) {
  if (folded_) return dy;
  if (!input_grad_needed_) return dx_;
  dx_.resize(dy.shape());
  const int64_t n = dy.numel();
  for_each_chunk(n, [&](int64_t begin, int64_t end) {
    const float* __restrict y = y_.data();
    const float* __restrict g = dy.data();
    float* __restrict dx = dx_.data();
    const float a = param_;
    switch (act_) {
      case ActivationKind::relu:
        for (int64_t i = begin; i < end; ++i) dx[i] = y[i] > 0.0f ? g[i] : 0.0f;
        break;
      case ActivationKind::tanh:
        for (int64_t i = begin; i < end; ++i) dx[i] = g[i] * (1.0f - y[i] * y[i]);
        break;
      case ActivationKind::sigmoid:
        for (int64_t i = begin; i < end; ++i) dx[i] = g[i] * y[i] * (1.0f - y[i]);
        break;
      case ActivationKind::leaky_relu:  // y > 0 exactly where x > 0, the slope being at least 0
        for (int64_t i = begin; i < end; ++i) dx[i] = y[i] > 0.0f ? g[i] : a * g[i];
        break;
      case ActivationKind::elu:  // for x <= 0, d/dx alpha (e^x - 1) = alpha e^x = y + alpha
        for (int64_t i = begin; i < end; ++i) dx[i] = y[i] > 0.0f ? g[i] : g[i] * (y[i] + a);
        break;
      case ActivationKind::gelu: {
        const float* __restrict x = x_.data();
        for (int64_t i = begin; i < end; ++i) dx[i] = g[i] * gelu_derivative(x[i]);
        break;
      }
    }
  });
  return dx_;
}

}  // namespace ringtrain
