#include "ringtrain/nn/layernorm.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "ringtrain/tensor/error.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ringtrain {

std::string LayerNorm::spec() const {
  if (eps_ == 1e-5f) return "layernorm";
  char text[48];
  std::snprintf(text, sizeof text, "layernorm(eps=%.9g)", static_cast<double>(eps_));
  return text;
}

Shape LayerNorm::build(const Shape& sample_in, Rng&) {
  if (sample_in.empty()) throw Error("layernorm needs samples with at least one dimension");
  channels_ = sample_in.back();
  sample_numel_ = shape_numel(sample_in);
  weight_.value = Tensor({channels_});
  weight_.value.fill(1.0f);
  weight_.grad = Tensor({channels_});
  bias_.value = Tensor({channels_});
  bias_.grad = Tensor({channels_});
  return sample_in;
}

namespace {
constexpr int64_t kParallelFrom = int64_t{1} << 15;  // elements: below, a thread team costs more than it saves
}

// One pass for the statistics: the sums of x and x^2 in double, whose cancellation at C of a few thousand
// and activations of order 1 stays far below float's precision.
const Tensor& LayerNorm::forward(const Tensor& x, Mode) {
  x_ = &x;
  const int64_t c = channels_, rows = x.numel() / c;
  y_.resize(x.shape());
  mean_.resize({rows});
  inv_std_.resize({rows});
  const float* in = x.data();
  const float* w = weight_.value.data();
  const float* b = bias_.value.data();
  float* out = y_.data();
  float* means = mean_.data();
  float* inv_stds = inv_std_.data();
  const double eps = eps_;
#pragma omp parallel for schedule(static) if (x.numel() >= kParallelFrom)
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict xr = in + r * c;
    float* __restrict yr = out + r * c;
    double sum = 0.0, sum_sq = 0.0;
#pragma omp simd reduction(+ : sum, sum_sq)
    for (int64_t j = 0; j < c; ++j) {
      sum += xr[j];
      sum_sq += static_cast<double>(xr[j]) * xr[j];
    }
    const double mean = sum / static_cast<double>(c);
    const double var = std::max(sum_sq / static_cast<double>(c) - mean * mean, 0.0);
    const float m = static_cast<float>(mean), s = static_cast<float>(1.0 / std::sqrt(var + eps));
    means[r] = m;
    inv_stds[r] = s;
    for (int64_t j = 0; j < c; ++j) yr[j] = (xr[j] - m) * s * w[j] + b[j];
  }
  return y_;
}

// With xhat = (x - mean) / std and g = dy * weight:
//   dx = (g - mean(g) - xhat * mean(g * xhat)) / std,  dweight = sum dy * xhat,  dbias = sum dy.
// The parameter sums go to per-thread partials, added at the end, so no two threads write one address.
const Tensor& LayerNorm::backward(const Tensor& dy) {
  const int64_t c = channels_, rows = dy.numel() / c;
  if (input_grad_needed_) dx_.resize(dy.shape());
  const float* in = x_->data();
  const float* g_all = dy.data();
  const float* w = weight_.value.data();
  const float* means = mean_.data();
  const float* inv_stds = inv_std_.data();
  float* dx = input_grad_needed_ ? dx_.data() : nullptr;
  const bool parallel = dy.numel() >= kParallelFrom;
#ifdef _OPENMP
  const int threads = parallel ? omp_get_max_threads() : 1;
#else
  const int threads = 1;
#endif
  std::vector<float> partial(static_cast<size_t>(threads) * 2 * static_cast<size_t>(c), 0.0f);
#pragma omp parallel if (parallel)
  {
#ifdef _OPENMP
    const int thread = omp_get_thread_num();
#else
    const int thread = 0;
#endif
    float* __restrict dw = partial.data() + static_cast<size_t>(thread) * 2 * c;
    float* __restrict db = dw + c;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* __restrict xr = in + r * c;
      const float* __restrict gr = g_all + r * c;
      const float m = means[r], s = inv_stds[r];
      float sum_g = 0.0f, sum_gx = 0.0f;
#pragma omp simd reduction(+ : sum_g, sum_gx)
      for (int64_t j = 0; j < c; ++j) {
        const float xhat = (xr[j] - m) * s;
        const float g = gr[j] * w[j];
        sum_g += g;
        sum_gx += g * xhat;
        dw[j] += gr[j] * xhat;
        db[j] += gr[j];
      }
      if (!dx) continue;
      const float mean_g = sum_g / static_cast<float>(c), mean_gx = sum_gx / static_cast<float>(c);
      float* __restrict dxr = dx + r * c;
      for (int64_t j = 0; j < c; ++j) {
        const float xhat = (xr[j] - m) * s;
        dxr[j] = (gr[j] * w[j] - mean_g - xhat * mean_gx) * s;
      }
    }
  }
  float* dweight = weight_.grad.data();
  float* dbias = bias_.grad.data();
  for (int t = 0; t < threads; ++t) {
    const float* dw = partial.data() + static_cast<size_t>(t) * 2 * c;
    for (int64_t j = 0; j < c; ++j) {
      dweight[j] += dw[j];
      dbias[j] += dw[c + j];
    }
  }
  return dx_;
}

}  // namespace ringtrain
