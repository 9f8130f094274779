// Optimizers with PyTorch's update rules (torch.optim.SGD, Adam, AdamW, RMSprop), so hyper-parameters carry
// over. For SGD, Adam and RMSprop weight decay is the coupled L2 form: g += weight_decay * w, on every
// parameter as in PyTorch. AdamW's is decoupled (Loshchilov & Hutter): w -= lr * weight_decay * w before
// Adam's update, and only on the kernels (Param::kernel: linear and conv weights, embedding tables), never
// on biases or norms, as nanoGPT and llm.c decay. An L1 penalty l1 * sum |w| over the kernels adds its
// gradient to any optimizer's: g += l1 * sign(w), sign(0) = 0.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ringtrain/nn/layer.hpp"
#include "ringtrain/tensor/enum_names.hpp"

namespace ringtrain {

enum class OptimizerKind { sgd, adam, adamw, rmsprop };
inline constexpr EnumNames<OptimizerKind, 4> kOptimizerKindNames{{{OptimizerKind::sgd, "sgd"},
                                                                   {OptimizerKind::adam, "adam"},
                                                                   {OptimizerKind::adamw, "adamw"},
                                                                   {OptimizerKind::rmsprop, "rmsprop"}}};
constexpr const auto& enum_names(OptimizerKind) { return kOptimizerKindNames; }

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::sgd;
  float momentum = 0.9f;     // sgd, rmsprop
  bool nesterov = false;     // sgd
  float weight_decay = 0.0f;  // adamw: decoupled, kernels only; the others: coupled L2, every parameter
  float l1 = 0.0f;           // kernels only
  float beta1 = 0.9f, beta2 = 0.999f;  // adam, adamw
  float alpha = 0.99f;                 // rmsprop smoothing
  float eps = 1e-8f;                   // adam, adamw, rmsprop
};

// What AdamW's decoupled decay multiplies a parameter by before the step: 1 - lr * weight_decay on kernels,
// 1 elsewhere and for the other optimizers (whose decay is coupled).
float decoupled_keep(const OptimizerConfig& config, bool kernel, float lr);

// A run of one parameter's elements: where its values and gradient are, how many, and whether the parameter is
// a kernel (--l1, AdamW's decay). ZeRO (--shard-optimizer) steps a rank's share of the parameters as such spans.
struct ParamSpan {
  float* value = nullptr;
  const float* grad = nullptr;
  int64_t size = 0;
  bool kernel = false;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Updates every parameter from its gradient with learning rate lr. The parameter list must be the same
  // (same order, same shapes) on every call: state is kept per position.
  virtual void step(const std::vector<Param*>& params, float lr) = 0;
  // The same update over spans of parameters (ZeRO: this rank's share), state kept per position as 1-D
  // tensors of each span's size. Every update rule here is element-wise, so stepping a parameter in spans
  // equals stepping it whole, bit for bit. Host optimizers; the GPU's throws.
  virtual void step_spans(const std::vector<ParamSpan>& spans, float lr);
  // On a GPU: the device float that step's kernels read first, skipping the update when it is not 0 (the
  // non-finite check's verdict, nn/gradient_check.hpp, left on the device so the host never waits inside a
  // step). A host optimizer is simply not called for a skipped step, so it takes none.
  virtual void skip_update_when(const float* device_flag) { (void)device_flag; }

  // Checkpoints. The names of the state tensors kept per parameter, PyTorch's: "momentum" (SGD, RMSprop
  // with momentum), "exp_avg" and "exp_avg_sq" (Adam, AdamW), "square_avg" (RMSprop). May be empty (plain SGD).
  virtual std::vector<std::string> state_names() const = 0;
  // state(params)[i][k]: params[i]'s tensor named state_names()[k], on the optimizer's device. Created
  // zeroed when the optimizer has not stepped yet, so a fresh optimizer can be loaded from a checkpoint.
  virtual std::vector<std::vector<Tensor*>> state(const std::vector<Param*>& params) = 0;
  // The same for step_spans' state (span_state(spans)[i][k]: spans[i]'s, [size]).
  virtual std::vector<std::vector<Tensor*>> span_state(const std::vector<ParamSpan>& spans);
  // Updates applied (Adam's bias correction counts them); a checkpoint saves and restores it. On a GPU the
  // count lives on the device, which alone knows which updates were skipped: reading it waits for the GPU.
  virtual int64_t steps() const { return steps_; }
  virtual void set_steps(int64_t steps) { steps_ = steps; }

 protected:
  int64_t steps_ = 0;
};

// An optimizer's state for a whole model, on the host (a checkpoint's copy): for each of the model's
// parameters, in model order, one tensor per state name, shaped like the parameter.
struct OptimizerState {
  int64_t steps = 0;
  std::vector<std::string> names;
  std::vector<std::vector<Tensor>> tensors;  // [parameter][name]
};

// Zeroed state named `names` for `params` (the whole model's, in order).
OptimizerState zero_optimizer_state(const std::vector<std::string>& names, const std::vector<Param*>& params);
// Copies `optimizer`'s state for `params` into / out of `state`, whose parameters from `first` on are these.
void copy_optimizer_state_out(Optimizer& optimizer, const std::vector<Param*>& params, OptimizerState& state,
                              size_t first = 0);
void copy_optimizer_state_in(const OptimizerState& state, size_t first, Optimizer& optimizer,
                             const std::vector<Param*>& params);
// The same where params[i] is the state's parameter positions[i] (an optimizer of a model's trained
// parameters, Model::trained_positions: a frozen one's state stays as it is, zero).
void copy_optimizer_state_out(Optimizer& optimizer, const std::vector<Param*>& params, OptimizerState& state,
                              const std::vector<size_t>& positions);
void copy_optimizer_state_in(const OptimizerState& state, const std::vector<size_t>& positions, Optimizer& optimizer,
                             const std::vector<Param*>& params);

// The optimizer for parameters on `device` (on the GPU: fused kernels/, one launch per step).
std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& config, Device device = Device::cpu);

}  // namespace ringtrain
