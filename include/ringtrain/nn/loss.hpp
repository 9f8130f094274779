// Losses with their metric. Softmax cross-entropy scores class labels (metric: accuracy); MSE scores target
// values (metric: mean absolute error). Scores are returned as sums so ranks and batches can add them up.
#pragma once
#include <memory>
#include <string>

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
};

class Loss {
 public:
  virtual ~Loss() = default;
  virtual std::string name() const = 0;
  virtual std::string metric_name() const = 0;  // "accuracy" or "mae"
  // Scores the batch and keeps what backward needs.
  virtual Score forward(const Tensor& out, const Targets& targets) = 0;
  // Gradient of scale * (mean loss over the last forward's batch) w.r.t. the outputs.
  virtual const Tensor& backward(float scale) = 0;
};

class SoftmaxCrossEntropy : public Loss {
 public:
  std::string name() const override { return "cross_entropy"; }
  std::string metric_name() const override { return "accuracy"; }
  Score forward(const Tensor& logits, const Targets& targets) override;
  const Tensor& backward(float scale) override;

 private:
  Tensor probs_, grad_;
  const std::vector<int32_t>* labels_ = nullptr;
};

class MeanSquaredError : public Loss {
 public:
  std::string name() const override { return "mse"; }
  std::string metric_name() const override { return "mae"; }
  Score forward(const Tensor& out, const Targets& targets) override;
  const Tensor& backward(float scale) override;

 private:
  Tensor diff_, grad_;
};

std::unique_ptr<Loss> make_loss(bool classification);

}  // namespace ringtrain
