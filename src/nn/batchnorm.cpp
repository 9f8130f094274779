#include "ringtrain/nn/batchnorm.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "ringtrain/tensor/cpu_features.hpp"
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

namespace {

// Adds term(i) = {u, v} over i < n into sum_u and sum_v: in 16 float lanes, which vectorise without
// -ffast-math, then each row's lanes in double, so long channels (a ResNet stem's 800k values) do not drift.
template <class Term>
void add_in_lanes(int64_t n, Term term, double& sum_u, double& sum_v) {
  constexpr int kLanes = 16;
  float u[kLanes] = {}, v[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const auto [a, b] = term(i + l);
      u[l] += a, v[l] += b;
    }
  for (; i < n; ++i) {
    const auto [a, b] = term(i);
    u[0] += a, v[0] += b;
  }
  for (int l = 0; l < kLanes; ++l) sum_u += u[l], sum_v += v[l];
}

// A row's values and squares less `shift`. Shifting by a value of the channel keeps E[x^2] - E[x]^2 from
// cancelling when the mean is large next to the spread (the shifted-data algorithm).
void add_row_moments(const float* p, int64_t n, float shift, double& sum, double& squares) {
  add_in_lanes(n, [&](int64_t i) { const float d = p[i] - shift; return std::pair{d, d * d}; }, sum, squares);
}

// A row's g and g * xhat, where g is dy, or 0 where a folded ReLU's output y was 0.
void add_row_gradient_sums(const float* dy, const float* xhat, const float* y, bool relu, int64_t n, double& sum_dy,
                           double& sum_dy_xhat) {
  add_in_lanes(n, [&](int64_t i) {
    const float g = !relu || y[i] > 0.0f ? dy[i] : 0.0f;
    return std::pair{g, g * xhat[i]};
  }, sum_dy, sum_dy_xhat);
}

// One row of forward: xhat = (x - mean) * inv_std, y = max(gamma * xhat + beta, floor). The values come in as
// parameters: read through a lambda's captured references, every element reloaded them (a store to a float
// may change a captured float) and the loop stayed scalar, 15% of a ResNet-20 step.
void normalise_row(const float* __restrict in, float* __restrict xhat, float* __restrict out, int64_t n, float mean,
                   float inv_std, float gamma, float beta, float floor) {
  for (int64_t s = 0; s < n; ++s) {
    xhat[s] = (in[s] - mean) * inv_std;
    const float v = gamma * xhat[s] + beta;
    out[s] = v < floor ? floor : v;
  }
}

}  // namespace

// Element (n, c, s) of a [N, C, S] view lives at (n * C + c) * S + s.
int64_t BatchNorm::batch_moments(const Tensor& x, std::vector<float>& mean, std::vector<float>& var) {
  const int64_t n = x.dim(0);
  double count = static_cast<double>(n * spatial_);
  std::vector<float> shift(static_cast<size_t>(channels_));
  std::vector<double> sums(static_cast<size_t>(2 * channels_));  // per channel: sum of x - shift, then of its square
  auto channel_sums = [&] {
#pragma omp parallel for schedule(static) if (x.numel() > (1 << 16))
    for (int64_t c = 0; c < channels_; ++c) {
      double sum = 0.0, squares = 0.0;
      run_vectorised([&] {
        for (int64_t b = 0; b < n; ++b)
          add_row_moments(x.data() + (b * channels_ + c) * spatial_, spatial_, shift[c], sum, squares);
      });
      sums[c] = sum, sums[channels_ + c] = squares;
    }
  };
  if (!replicas_) {
    // One of the channel's values (none in an empty batch, which the caller then refuses).
    for (int64_t c = 0; c < channels_; ++c) shift[c] = n > 0 ? x.data()[c * spatial_] : 0.0f;
    channel_sums();
  } else {
    // The replicas must shift alike: first the global mean, then every replica's moments about it.
    channel_sums();  // shift 0: plain sums
    std::vector<double> totals(sums.begin(), sums.begin() + channels_);
    totals.push_back(count);
    replicas_->sum(totals.data(), totals.size());
    count = totals.back();
    for (int64_t c = 0; c < channels_; ++c) shift[c] = static_cast<float>(totals[c] / count);
    channel_sums();
    replicas_->sum(sums.data(), sums.size());
  }
  for (int64_t c = 0; c < channels_; ++c) {
    const double shifted_mean = sums[c] / count;
    mean[c] = static_cast<float>(shift[c] + shifted_mean);
    var[c] = static_cast<float>(std::max(0.0, sums[channels_ + c] / count - shifted_mean * shifted_mean));
  }
  return static_cast<int64_t>(count);
}

void BatchNorm::update_running_statistics(const std::vector<float>& mean, const std::vector<float>& var,
                                          int64_t count) {
  const float unbiased = static_cast<float>(count) / static_cast<float>(count - 1);
  for (int64_t c = 0; c < channels_; ++c) {
    running_mean_[c] = (1.0f - momentum_) * running_mean_[c] + momentum_ * mean[c];
    running_var_[c] = (1.0f - momentum_) * running_var_[c] + momentum_ * var[c] * unbiased;
  }
}

const Tensor& BatchNorm::forward(const Tensor& x, Mode mode) {
  const int64_t n = x.dim(0);
  std::vector<float> mean(static_cast<size_t>(channels_)), var(static_cast<size_t>(channels_));
  if (mode == Mode::train) {
    const int64_t count = batch_moments(x, mean, var);
    if (count < 2)
      throw Error("batchnorm needs more than one value per channel in training (batch of 1 without spatial dims)");
    update_running_statistics(mean, var, count);
    batch_count_ = static_cast<uint64_t>(count);
  } else {
    mean.assign(running_mean_.data(), running_mean_.data() + channels_);
    var.assign(running_var_.data(), running_var_.data() + channels_);
  }
  y_.resize(x.shape());
  xhat_.resize(x.shape());
  inv_std_.resize({channels_});
  // Without a folded ReLU the floor is -inf, which the select leaves alone (NaN included: the compare is false).
  const float floor = relu_ ? 0.0f : -std::numeric_limits<float>::infinity();
#pragma omp parallel for schedule(static) if (x.numel() > (1 << 16))
  for (int64_t c = 0; c < channels_; ++c) {
    const float inv_std = 1.0f / std::sqrt(var[c] + eps_);
    const float gamma = gamma_.value[c], beta = beta_.value[c], m = mean[c];
    inv_std_[c] = inv_std;
    run_vectorised([&] {
      for (int64_t b = 0; b < n; ++b) {
        const int64_t off = (b * channels_ + c) * spatial_;
        normalise_row(x.data() + off, xhat_.data() + off, y_.data() + off, spatial_, m, inv_std, gamma, beta, floor);
      }
    });
  }
  return y_;
}

const Tensor& BatchNorm::backward(const Tensor& dy) {
  const int64_t n = dy.dim(0);
  std::vector<double> sums(static_cast<size_t>(2 * channels_));  // per channel: sum of dy, then of dy * xhat
#pragma omp parallel for schedule(static) if (dy.numel() > (1 << 16))
  for (int64_t c = 0; c < channels_; ++c) {
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    run_vectorised([&] {
      for (int64_t b = 0; b < n; ++b) {
        const int64_t off = (b * channels_ + c) * spatial_;
        add_row_gradient_sums(dy.data() + off, xhat_.data() + off, y_.data() + off, relu_, spatial_, sum_dy,
                              sum_dy_xhat);
      }
    });
    gamma_.grad[c] += static_cast<float>(sum_dy_xhat);  // this replica's share: the gradient averager sums them
    beta_.grad[c] += static_cast<float>(sum_dy);
    sums[c] = sum_dy, sums[channels_ + c] = sum_dy_xhat;
  }
  if (!input_grad_needed_) return dx_;
  if (replicas_) replicas_->sum(sums.data(), sums.size());
  const float count = static_cast<float>(batch_count_);
  dx_.resize(dy.shape());
#pragma omp parallel for schedule(static) if (dy.numel() > (1 << 16))
  for (int64_t c = 0; c < channels_; ++c) {
    const float scale = gamma_.value[c] * inv_std_[c] / count;
    const float sum_dy = static_cast<float>(sums[c]), sum_dy_xhat = static_cast<float>(sums[channels_ + c]);
    run_vectorised([&] {
      for (int64_t b = 0; b < n; ++b) {
        const int64_t off = (b * channels_ + c) * spatial_;
        const float* __restrict g = dy.data() + off;
        const float* __restrict xh = xhat_.data() + off;
        const float* __restrict out = y_.data() + off;
        float* __restrict dx = dx_.data() + off;
        for (int64_t s = 0; s < spatial_; ++s) {
          const float gs = !relu_ || out[s] > 0.0f ? g[s] : 0.0f;
          dx[s] = scale * (count * gs - sum_dy - xh[s] * sum_dy_xhat);
        }
      }
    });
  }
  return dx_;
}

}  // namespace ringtrain
