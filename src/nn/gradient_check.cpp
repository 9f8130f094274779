#include "ringtrain/nn/gradient_check.hpp"

#include <cstring>
#include <utility>

#include "nn/cuda_factories.hpp"
#include "ringtrain/tensor/cpu_features.hpp"

namespace ringtrain {

namespace {

// NaN and infinity are the floats whose exponent bits are all ones. An integer OR over the bits vectorises
// (a float test or sum would not, without -ffast-math), so this costs one pass over memory.
uint32_t nonfinite_bits(const float* __restrict x, int64_t n) {
  uint32_t bad = 0;
  for (int64_t j = 0; j < n; ++j) {
    uint32_t bits;
    std::memcpy(&bits, x + j, sizeof bits);
    bad |= static_cast<uint32_t>((~bits & 0x7f800000u) == 0);
  }
  return bad;
}

bool holds_nonfinite(const Tensor& t) {
  const float* x = t.data();
  const int64_t n = t.numel();
  uint32_t bad = 0;
  run_vectorised([x, n, &bad] { bad = nonfinite_bits(x, n); });
  return bad != 0;
}

class HostGradientCheck final : public GradientCheck {
 public:
  void look(const std::vector<Param*>& params) override {
    first_bad_ = -1;
    for (size_t k = 0; k < params.size() && first_bad_ < 0; ++k)
      if (holds_nonfinite(params[k]->grad)) first_bad_ = static_cast<int>(k);
    verdict_ = first_bad_ >= 0 ? 1.0f : 0.0f;
  }
  float* verdict() override { return &verdict_; }
  void record(int64_t step) override {
    if (verdict_ == 0.0f) return;
    if (findings_.bad_steps++ == 0) findings_.first_step = step, findings_.first_param = first_bad_;
  }
  const float* skip_flag() const override { return nullptr; }
  Findings take_findings() override { return std::exchange(findings_, Findings{}); }

 private:
  float verdict_ = 0.0f;
  int first_bad_ = -1;
  Findings findings_;
};

}  // namespace

std::unique_ptr<GradientCheck> make_gradient_check(Device device, bool keep_skipping) {
  if (device == Device::cuda) return cuda::make_cuda_gradient_check(keep_skipping);
  return std::make_unique<HostGradientCheck>();
}

}  // namespace ringtrain
