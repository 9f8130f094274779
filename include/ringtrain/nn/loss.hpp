// Losses with their metric. Softmax cross-entropy scores class labels (metric: accuracy), optionally against
// smoothed labels, one per sample or, for sequence models, one per position; MSE scores target values (metric: mean absolute error). Scores are sums so ranks and
// batches can add them up. A loss keeps a running score that take_score() hands over: on the GPU the sums
// stay on the device, so a training step never waits for it, and only reading the score does.
#pragma once
#include <cmath>
#include <memory>
#include <string>
#include <utility>

#include "ringtrain/tensor/targets.hpp"

namespace ringtrain {

struct Score {
  double loss_sum = 0.0;    // sum over samples of the per-sample loss
  double metric_sum = 0.0;  // correct predictions, or sum over samples of the mean absolute error
  int64_t samples = 0;

  Score& operator+=(const Score& o) {
    loss_sum += o.loss_sum, metric_sum += o.metric_sum, samples += o.samples;
    return *this;
  }
  double loss() const { return samples ? loss_sum / static_cast<double>(samples) : 0.0; }
  double metric() const { return samples ? metric_sum / static_cast<double>(samples) : 0.0; }
  // Squared and absolute errors of targets standardised as raw * target_scale + shift, in raw units.
  Score in_raw_units(float target_scale) const {
    const double s = std::fabs(static_cast<double>(target_scale));
    return {loss_sum / (s * s), metric_sum / s, samples};
  }
};

class Loss {
 public:
  virtual ~Loss() = default;
  virtual std::string name() const = 0;
  virtual std::string metric_name() const = 0;  // "accuracy" or "mae"
  // Scores the batch into the running score and keeps what backward needs.
  virtual void forward(const Tensor& out, const Targets& targets) = 0;
  // Gradient of scale * (mean loss over the last forward's batch) w.r.t. the outputs.
  virtual const Tensor& backward(float scale) = 0;
  // The score of every forward since the last call, which starts a new one.
  virtual Score take_score() = 0;
};

// With label smoothing eps the target of a sample of class c is (1 - eps) * onehot(c) + eps / K over the K
// classes, as PyTorch's CrossEntropyLoss(label_smoothing=eps) and Keras's label_smoothing have it: the loss
// (which the score reports) is the cross-entropy against that target, and its gradient softmax - target.
class SoftmaxCrossEntropy : public Loss {
 public:
  explicit SoftmaxCrossEntropy(float label_smoothing = 0.0f) : smoothing_(label_smoothing) {}
  std::string name() const override { return "cross_entropy"; }
  std::string metric_name() const override { return "accuracy"; }
  void forward(const Tensor& logits, const Targets& targets) override;
  const Tensor& backward(float scale) override;
  Score take_score() override { return std::exchange(score_, {}); }

 private:
  float smoothing_;
  Score score_;
  Tensor probs_, grad_;  // probs_ [rows, classes]
  Shape logits_shape_;
  const std::vector<int32_t>* labels_ = nullptr;
};

// Trains on targets as the data gives them (standardised, see TargetSpace) and scores in the target's own
// units: target_scale is the data's y_scale.
class MeanSquaredError : public Loss {
 public:
  explicit MeanSquaredError(float target_scale = 1.0f) : target_scale_(target_scale) {}
  std::string name() const override { return "mse"; }
  std::string metric_name() const override { return "mae"; }
  void forward(const Tensor& out, const Targets& targets) override;
  const Tensor& backward(float scale) override;
  Score take_score() override { return std::exchange(score_, {}).in_raw_units(target_scale_); }

 private:
  float target_scale_;
  Score score_;
  Tensor diff_, grad_;
};

// The rows that softmax cross-entropy scores in a batch of logits, each of `classes` values: one a sample for
// [batch, classes] (or [batch, C, H, W]), one a position for a sequence model's [batch, T, classes], whose
// labels the batch holds per position. The score counts rows as its samples: loss per token.
struct ScoredRows {
  int64_t rows = 0, classes = 0;
};
ScoredRows scored_rows(const Tensor& logits);

// What every loss checks of a batch before scoring it, on either device (the CUDA kernels index by label,
// so these run on the host first). Throw Error naming the mismatch.
void check_labels(const Targets& targets, int64_t rows, int64_t classes);
void check_target_values(const Targets& targets, const Tensor& out);

// The loss for the data (classification: cross-entropy, with `label_smoothing`; else MSE in the targets' units)
// on the model's device.
std::unique_ptr<Loss> make_loss(const TargetSpace& targets, Device device = Device::cpu, float label_smoothing = 0.0f);
inline std::unique_ptr<Loss> make_loss(bool classification, Device device = Device::cpu) {
  return make_loss(TargetSpace{classification}, device);
}

}  // namespace ringtrain
