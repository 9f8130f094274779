// Batch normalisation over the batch (and spatial positions for [C, H, W] inputs), per feature/channel.
// Statistics are this rank's batch only ("per rank", like PyTorch's BatchNorm under DDP), or with a
// CrossReplicaSum the whole global batch's (PyTorch's SyncBatchNorm): forward sums the moments over the
// replicas, backward the two gradient sums, so each replica computes what one rank with the whole batch
// would for its samples.
#pragma once
#include <cstdint>
#include <vector>

#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

class BatchNorm : public Layer {
 public:
  BatchNorm(float momentum, float eps) : momentum_(momentum), eps_(eps) {}
  std::string kind() const override { return "batchnorm"; }
  std::string spec() const override;
  Shape build(const Shape& sample_in, Rng& rng) override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&y_, &xhat_, &inv_std_}, {}, {&batch_count_}}; }
  std::vector<Param*> params() override { return {&gamma_, &beta_}; }
  std::vector<NamedTensor> buffers() override { return {{"running_mean", &running_mean_}, {"running_var", &running_var_}}; }

  // ResNets follow nearly every batchnorm with a ReLU: y = max(bn(x), 0) here, and backward passes the
  // gradient only where y > 0 (Layer::fold_relu).
  bool fold_relu() override { return relu_ = true; }
  bool relu_folded() const { return relu_; }
  void share_batch_statistics(CrossReplicaSum* sum) override { replicas_ = sum; }
  CrossReplicaSum* batch_statistics_sum() const { return replicas_; }

  float momentum() const { return momentum_; }
  float eps() const { return eps_; }

 private:
  // Per channel: the mean and the biased variance of this batch (and the other replicas', when shared), and
  // the number of values behind them.
  int64_t batch_moments(const Tensor& x, std::vector<float>& mean, std::vector<float>& var);
  void update_running_statistics(const std::vector<float>& mean, const std::vector<float>& var, int64_t count);

  float momentum_, eps_;
  bool relu_ = false;
  CrossReplicaSum* replicas_ = nullptr;
  uint64_t batch_count_ = 0;  // values per channel behind the training statistics (all replicas')
  int64_t channels_ = 0, spatial_ = 1;
  Param gamma_{"weight", {}, {}}, beta_{"bias", {}, {}};
  Tensor running_mean_, running_var_;
  Tensor y_, dx_, xhat_, inv_std_;
};

}  // namespace ringtrain
