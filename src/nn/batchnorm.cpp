#include "ringtrain/nn/batchnorm.hpp"

#include <cmath>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

std::string BatchNorm::spec() const {
  return "batchnorm(momentum=" + std::to_string(momentum_) + ",eps=" + std::to_string(eps_) + ")";
}

Shape BatchNorm::build(const Shape& in, Rng&) {
  if (in.size() != 1 && in.size() != 3)
    throw Error("batchnorm needs [features] or [channels, height, width] input, got " + shape_str(in));
  channels_ = in[0];
  spatial_ = in.size() == 3 ? in[1] * in[2] : 1;
  gamma_.value = Tensor({channels_});
  gamma_.value.fill(1.0f);
  gamma_.grad = Tensor({channels_});
  beta_.value = Tensor({channels_});
  beta_.grad = Tensor({channels_});
  running_mean_ = Tensor({channels_});
  running_var_ = Tensor({channels_});
  running_var_.fill(1.0f);
  return in;
}

// Element (n, c, s) of a [N, C, S] view lives at (n * C + c) * S + s.
const Tensor& BatchNorm::forward(const Tensor& x, Mode mode) {
  const int64_t n = x.dim(0), count = n * spatial_;
  if (mode == Mode::train && count < 2)
    throw Error("batchnorm needs more than one value per channel in training (batch of 1 without spatial dims)");
  y_.resize(x.shape());
  xhat_.resize(x.shape());
  inv_std_.resize({channels_});
#pragma omp parallel for schedule(static) if (x.numel() > (1 << 16))
  for (int64_t c = 0; c < channels_; ++c) {
    float mean, var;
    if (mode == Mode::train) {
      double sum = 0.0, sq = 0.0;
      for (int64_t b = 0; b < n; ++b) {
        const float* p = x.data() + (b * channels_ + c) * spatial_;
        for (int64_t s = 0; s < spatial_; ++s) sum += p[s], sq += static_cast<double>(p[s]) * p[s];
      }
      const double m = sum / static_cast<double>(count);
      mean = static_cast<float>(m);
      var = static_cast<float>(std::max(0.0, sq / static_cast<double>(count) - m * m));
      const float unbiased = var * static_cast<float>(count) / static_cast<float>(count - 1);
      running_mean_[c] = (1.0f - momentum_) * running_mean_[c] + momentum_ * mean;
      running_var_[c] = (1.0f - momentum_) * running_var_[c] + momentum_ * unbiased;
    } else {
      mean = running_mean_[c];
      var = running_var_[c];
    }
    const float inv_std = 1.0f / std::sqrt(var + eps_);
    inv_std_[c] = inv_std;
    for (int64_t b = 0; b < n; ++b) {
      const int64_t off = (b * channels_ + c) * spatial_;
      for (int64_t s = 0; s < spatial_; ++s) {
        const float xh = (x[off + s] - mean) * inv_std;
        xhat_[off + s] = xh;
        y_[off + s] = gamma_.value[c] * xh + beta_.value[c];
      }
    }
  }
  return y_;
}

const Tensor& BatchNorm::backward(const Tensor& dy) {
  const int64_t n = dy.dim(0);
  const float count = static_cast<float>(n * spatial_);
  if (input_grad_needed_) dx_.resize(dy.shape());
#pragma omp parallel for schedule(static) if (dy.numel() > (1 << 16))
  for (int64_t c = 0; c < channels_; ++c) {
    float sum_dy = 0.0f, sum_dy_xhat = 0.0f;
    for (int64_t b = 0; b < n; ++b) {
      const int64_t off = (b * channels_ + c) * spatial_;
      for (int64_t s = 0; s < spatial_; ++s) sum_dy += dy[off + s], sum_dy_xhat += dy[off + s] * xhat_[off + s];
    }
    gamma_.grad[c] += sum_dy_xhat;
    beta_.grad[c] += sum_dy;
    if (!input_grad_needed_) continue;
    const float scale = gamma_.value[c] * inv_std_[c] / count;
    for (int64_t b = 0; b < n; ++b) {
      const int64_t off = (b * channels_ + c) * spatial_;
      for (int64_t s = 0; s < spatial_; ++s)
        dx_[off + s] = scale * (count * dy[off + s] - sum_dy - xhat_[off + s] * sum_dy_xhat);
    }
  }
  return dx_;
}

}  // namespace ringtrain
