// A residual block (He et al. 2016): y = body(x) + shortcut(x), where the body is any stack of layers and
// the shortcut is the identity or, where the body changes the shape, a projection stack (a strided 1x1 conv
// and a batchnorm in ResNets). The block is one layer to everything above it: a pipeline cuts between
// blocks, never inside one, and the parameters of its parts travel under names like "conv2/weight" and
// "shortcut/conv1/weight" below the block's own.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

using LayerStack = std::vector<std::unique_ptr<Layer>>;

// "conv1", "batchnorm1", "conv2", ...: each layer's kind and its ordinal among that kind in the stack.
std::vector<std::string> stack_layer_names(const LayerStack& stack);
// Lets each layer that has a ReLU epilogue (Layer::fold_relu) take over a ReLU right after it.
void fold_relus(LayerStack& stack);
// A stack's forward (its last layer's output) and backward (its first layer's input gradient): the paths of a
// block of layers (Residual, TransformerBlock).
const Tensor& forward_stack(LayerStack& stack, const Tensor& x, Mode mode);
const Tensor& backward_stack(LayerStack& stack, const Tensor& dy);

class Residual : public Layer {
 public:
  // An empty shortcut is the identity.
  Residual(LayerStack body, LayerStack shortcut);

  std::string kind() const override { return "residual"; }
  std::string spec() const override;
  Shape build(const Shape& sample_in, Rng& rng) override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override;
  std::vector<Param*> params() override;
  std::vector<NamedTensor> buffers() override;
  std::vector<uint64_t*> random_streams() override;
  double flops_per_sample() const override;
  bool fold_relu() override { return relu_ = true; }
  std::vector<std::pair<std::string, Layer*>> sublayers() override;
  void set_input_grad_needed(bool needed) override;
  void share_batch_statistics(CrossReplicaSum* sum) override;

  bool relu_folded() const { return relu_; }
  bool identity_shortcut() const { return shortcut_.empty(); }

 protected:
  // The CUDA twin: takes over `source`'s built parts, each replaced by convert(part), with its own tensors
  // on `device`. Only the element-wise steps below differ between devices.
  Residual(Residual& source, const std::function<std::unique_ptr<Layer>(Layer&)>& convert, Device device);

  // out = a + b, then max(out, 0) when `relu` (the block's output; the input gradient sums its two paths
  // without).
  virtual void add(const Tensor& a, const Tensor& b, Tensor& out, bool relu);
  // The gradient through the folded ReLU: dy where y > 0, else 0.
  virtual void relu_gradient(const Tensor& dy, const Tensor& y, Tensor& out);

 private:

  LayerStack body_, shortcut_;
  bool relu_ = false;
  Tensor y_, dy_relu_, dx_;
};

}  // namespace ringtrain
