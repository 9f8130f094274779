#include "ringtrain/nn/gradient_clip.hpp"

#include <cmath>

#include "nn/cuda_factories.hpp"
#include "ringtrain/tensor/cpu_features.hpp"

namespace ringtrain {

namespace {

// Eight running sums, one per lane: the loop vectorises without reassociating (no -ffast-math), and the
// order of additions is the same every run.
double sum_of_squares_lanes(const float* __restrict x, int64_t n) {
  constexpr int kLanes = 8;
  double lane[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int k = 0; k < kLanes; ++k) lane[k] += static_cast<double>(x[j + k]) * static_cast<double>(x[j + k]);
  double sum = 0.0;
  for (; j < n; ++j) sum += static_cast<double>(x[j]) * static_cast<double>(x[j]);
  for (double s : lane) sum += s;
  return sum;
}

class HostGradientClip final : public GradientClip {
 public:
  void measure(const std::vector<GradSpan>& spans) override {
    double sum = 0.0;
    for (const GradSpan& s : spans) sum += sum_of_squares(s.grad, s.size);
    sum_squares_ = static_cast<float>(sum);
  }
  float* sum_squares() override { return &sum_squares_; }
  void clip(const std::vector<GradSpan>& spans, float max_norm) override {
    const float factor = clip_factor(sum_squares_, max_norm);
    if (factor == 1.0f) return;
    for (const GradSpan& s : spans) scale_gradient(s.grad, s.size, factor);
  }

 private:
  float sum_squares_ = 0.0f;
};

}  // namespace

std::vector<GradSpan> grad_spans(const std::vector<Param*>& params) {
  std::vector<GradSpan> out;
  for (Param* p : params) out.push_back({p->grad.data(), p->grad.numel()});
  return out;
}

double sum_of_squares(const float* x, int64_t n) {
  double sum = 0.0;
  run_vectorised([&] { sum = sum_of_squares_lanes(x, n); });
  return sum;
}

// PyTorch's: clip_coef = max_norm / (total_norm + 1e-6), applied when below 1. A non-finite norm gives a
// non-finite factor: the non-finite check has skipped (or stopped) such a step already.
float clip_factor(double sum_squares, float max_norm) {
  const float norm = std::sqrt(static_cast<float>(sum_squares));
  const float factor = max_norm / (norm + 1e-6f);
  return factor < 1.0f ? factor : 1.0f;
}

void scale_gradient(float* x, int64_t n, float factor) {
  for (int64_t j = 0; j < n; ++j) x[j] *= factor;
}

std::unique_ptr<GradientClip> make_gradient_clip(Device device) {
  if (device == Device::cuda) return cuda::make_cuda_gradient_clip();
  return std::make_unique<HostGradientClip>();
}

}  // namespace ringtrain
