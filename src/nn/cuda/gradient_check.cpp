// The GPU's look for non-finite gradients (nn/gradient_check.hpp): a flag per parameter, then the step's
// verdict and the running findings in one small device block (kernels::NonfiniteStatus), all queued on the
// compute stream. The host reads the block only in take_findings.
#include <algorithm>

#include "kernels/kernels.hpp"
#include "nn/cuda_factories.hpp"
#include "ringtrain/nn/gradient_check.hpp"
#include "ringtrain/tensor/cuda_context.hpp"

namespace ringtrain::cuda {

namespace {

using kernels::NonfiniteStatus;

constexpr NonfiniteStatus kClean{0.0f, 0.0f, -1, -1, -1, 0};

class CudaGradientCheck final : public GradientCheck {
 public:
  explicit CudaGradientCheck(bool keep_skipping) : keep_skipping_(keep_skipping), status_(sizeof(NonfiniteStatus)) {
    reset();
  }

  void look(const std::vector<Param*>& params) override {
    cudaStream_t stream = context().compute();
    int* flags = static_cast<int*>(flags_.reserve(sizeof(int) * std::max<size_t>(params.size(), 1)));
    check(cudaMemsetAsync(flags, 0, sizeof(int) * params.size(), stream), "cudaMemsetAsync");
    for (size_t k = 0; k < params.size(); ++k)
      kernels::flag_nonfinite(params[k]->grad.data(), params[k]->grad.numel(), flags + k, stream);
    kernels::summarize_nonfinite(flags, static_cast<int>(params.size()), status(), stream);
  }
  float* verdict() override { return &status()->verdict; }
  void record(int64_t step) override {
    kernels::record_nonfinite(status(), step, keep_skipping_, context().compute());
  }
  const float* skip_flag() const override { return &status()->skip; }
  Findings take_findings() override {
    NonfiniteStatus found{};
    copy_bytes(&found, Device::cpu, status(), Device::cuda, sizeof found);  // waits for the steps queued
    reset();
    return {found.bad_steps, found.first_step, found.first_param};
  }

 private:
  NonfiniteStatus* status() const { return static_cast<NonfiniteStatus*>(status_.get()); }
  void reset() { copy_bytes(status(), Device::cuda, &kClean, Device::cpu, sizeof kClean); }

  bool keep_skipping_;
  DeviceBuffer status_, flags_;
};

}  // namespace

std::unique_ptr<GradientCheck> make_cuda_gradient_check(bool keep_skipping) {
  return std::make_unique<CudaGradientCheck>(keep_skipping);
}

}  // namespace ringtrain::cuda
