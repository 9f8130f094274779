// Optimizers with PyTorch's update rules (torch.optim.SGD, Adam, RMSprop), so hyper-parameters carry over.
// Weight decay is the coupled L2 form: g += weight_decay * w.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

struct OptimizerConfig {
  std::string kind = "sgd";  // sgd | adam | rmsprop
  float momentum = 0.9f;     // sgd, rmsprop
  bool nesterov = false;     // sgd
  float weight_decay = 0.0f;
  float beta1 = 0.9f, beta2 = 0.999f;  // adam
  float alpha = 0.99f;                 // rmsprop smoothing
  float eps = 1e-8f;                   // adam, rmsprop
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Updates every parameter from its gradient with learning rate lr. The parameter list must be the same
  // (same order, same shapes) on every call: state is kept per position.
  virtual void step(const std::vector<Param*>& params, float lr) = 0;
  // Per-parameter state tensors (momentum buffers, moments), for checkpoints.
  virtual std::vector<NamedTensor> state() = 0;
};

// The optimizer for parameters on `device` (on the GPU: fused kernels/, one launch per step). Throws Error
// for an unknown kind.
std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& config, Device device = Device::cpu);

}  // namespace ringtrain
