#include "ringtrain/nn/activation.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numbers>

#include "ringtrain/tensor/cpu_features.hpp"

namespace ringtrain {

namespace {

// e^x for x <= 0 (Cephes' expf: x = n ln 2 + r, |r| <= ln 2 / 2, a degree-6 polynomial for e^r, 2^n built
// in the exponent bits), within 2 ulp; 0 below -87. Plain arithmetic with no library call, so that the
// element-wise loops below vectorise (glibc's vector expf and erff need -ffast-math).
float exp_nonpositive(float x) {
  x = std::max(x, -87.0f);
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  const float n = (x * std::numbers::log2e_v<float> + kRound) - kRound;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // max(-126, n) is n for every x here, and -126 for a NaN, which p carries instead: no NaN cast to an integer.
  return p * std::bit_cast<float>((static_cast<int32_t>(std::max(-126.0f, n)) + 127) << 23);
}

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
