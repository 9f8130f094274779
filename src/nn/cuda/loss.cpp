// The CUDA losses. Scores are summed on the device (kernels::accumulate_sums) and read only by take_score.
#include <utility>

#include "nn/cuda_factories.hpp"

#include "kernels/kernels.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/tensor/cuda_context.hpp"

namespace ringtrain::cuda {

namespace {

// Per-row results and the running sums on the device, and the sample count on the host.
class DeviceScore {
 public:
  DeviceScore() : sums_(2 * sizeof(double)) { clear_sums(); }
  void ensure_rows(int64_t rows) {
    row_a_.reserve(sizeof(double) * static_cast<size_t>(rows));
    row_b_.reserve(sizeof(double) * static_cast<size_t>(rows));
  }
  double* row_a() { return static_cast<double*>(row_a_.get()); }
  double* row_b() { return static_cast<double*>(row_b_.get()); }
  void add_rows(int64_t rows) {
    kernels::accumulate_sums(row_a(), row_b(), rows, static_cast<double*>(sums_.get()), context().compute());
    samples_ += rows;
  }
  Score take() {
    double host[2];
    copy_bytes(host, Device::cpu, sums_.get(), Device::cuda, sizeof host);  // waits for the step
    clear_sums();
    return {host[0], host[1], std::exchange(samples_, 0)};
  }

 private:
  void clear_sums() { check(cudaMemsetAsync(sums_.get(), 0, sums_.bytes(), context().compute()), "cudaMemsetAsync"); }

  DeviceBuffer sums_, row_a_, row_b_;
  int64_t samples_ = 0;
};

// With label smoothing as the CPU's SoftmaxCrossEntropy (nn/loss.hpp).
class CudaSoftmaxCrossEntropy final : public Loss {
 public:
  explicit CudaSoftmaxCrossEntropy(float label_smoothing) : smoothing_(label_smoothing) {}
  std::string name() const override { return "cross_entropy"; }
  std::string metric_name() const override { return "accuracy"; }

  void forward(const Tensor& logits, const Targets& targets) override {
    const auto [n, classes] = scored_rows(logits);
    check_labels(targets, n, classes);
    logits_shape_ = logits.shape();
    labels_ = static_cast<const int32_t*>(targets.device_labels.get());
    const size_t label_bytes = sizeof(int32_t) * static_cast<size_t>(n);
    if (!labels_ || targets.device_labels.bytes() < label_bytes) {  // not uploaded with the batch: do it here
      copy_bytes(uploaded_labels_.reserve(label_bytes), Device::cuda, targets.labels.data(), Device::cpu, label_bytes);
      labels_ = static_cast<const int32_t*>(uploaded_labels_.get());
    }
    probs_.resize({n, classes});
    score_.ensure_rows(n);
    kernels::softmax_cross_entropy(logits.data(), labels_, probs_.data(), score_.row_a(), score_.row_b(), n, classes,
                                   smoothing_, context().compute());
    score_.add_rows(n);
  }

  const Tensor& backward(float scale) override {
    const int64_t n = probs_.dim(0), classes = probs_.dim(1);
    grad_.resize(logits_shape_);
    kernels::softmax_cross_entropy_grad(probs_.data(), labels_, grad_.data(), n, classes, scale / static_cast<float>(n),
                                        smoothing_, context().compute());
    return grad_;
  }

  Score take_score() override { return score_.take(); }

 private:
  float smoothing_;
  Tensor probs_{{0}, Device::cuda}, grad_{{0}, Device::cuda};  // probs_ [rows, classes]
  Shape logits_shape_;
  const int32_t* labels_ = nullptr;
  DeviceBuffer uploaded_labels_;
  DeviceScore score_;
};

class CudaMeanSquaredError final : public Loss {
 public:
  explicit CudaMeanSquaredError(float target_scale) : target_scale_(target_scale) {}
  std::string name() const override { return "mse"; }
  std::string metric_name() const override { return "mae"; }

  void forward(const Tensor& out, const Targets& targets) override {
    const int64_t n = out.dim(0), outputs = out.numel() / n;
    check_target_values(targets, out);
    const Tensor* target = &targets.values;
    if (target->device() != Device::cuda) {
      uploaded_targets_.copy_from(targets.values);
      target = &uploaded_targets_;
    }
    diff_.resize({n, outputs});
    score_.ensure_rows(n);
    kernels::squared_error(out.data(), target->data(), diff_.data(), score_.row_a(), score_.row_b(), n, outputs,
                           context().compute());
    score_.add_rows(n);
  }

  const Tensor& backward(float scale) override {
    grad_.resize(diff_.shape());
    kernels::scale(diff_.data(), grad_.data(), diff_.numel(), 2.0f * scale / static_cast<float>(diff_.numel()),
                   context().compute());
    return grad_;
  }

  Score take_score() override { return score_.take().in_raw_units(target_scale_); }

 private:
  float target_scale_;
  Tensor diff_{{0}, Device::cuda}, grad_{{0}, Device::cuda}, uploaded_targets_{{0}, Device::cuda};
  DeviceScore score_;
};

}  // namespace

std::unique_ptr<Loss> make_cuda_loss(const TargetSpace& targets, float label_smoothing) {
  if (targets.classification) return std::make_unique<CudaSoftmaxCrossEntropy>(label_smoothing);
  return std::make_unique<CudaMeanSquaredError>(targets.scale);
}

}  // namespace ringtrain::cuda
