// The layer contract. A layer owns its parameters, their gradients, its output and its input-gradient
// buffers (explicit memory, llm.c-style): forward returns a reference to its own output, backward to its
// own input gradient. A layer knows nothing of ranks, files or flags.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "ringtrain/nn/cross_replica_sum.hpp"
#include "ringtrain/tensor/rng.hpp"
#include "ringtrain/tensor/tensor.hpp"

namespace ringtrain {

enum class Mode { train, eval };

struct Param {
  std::string name;  // "weight", "bias", ...
  Tensor value;
  Tensor grad;  // accumulated by backward, cleared by Model::zero_grad (micro-batches add up)
  // A linear or convolution layer's weight: what --l1 penalises, as Keras's kernel_regularizer does (not
  // biases, nor batchnorm's scale and shift).
  bool kernel = false;
};

struct NamedTensor {
  std::string name;
  Tensor* tensor;
};

// What a layer's backward reads that its forward left behind: its output (the next layer's input) and any
// saved statistics, indices or mask stream. A pipeline stage keeps several micro-batches in flight between
// their forward and backward; it trades these with a stash per micro-batch (std::swap: buffers change
// hands, nothing is copied), so one set of layers serves them all.
struct ForwardState {
  std::vector<Tensor*> tensors = {};
  std::vector<std::vector<int32_t>*> indices = {};
  std::vector<uint64_t*> counters = {};
  void append(const ForwardState& other);
};

// One micro-batch's forward state while it is not in the layers.
struct ForwardStash {
  std::vector<Tensor> tensors;
  std::vector<std::vector<int32_t>> indices;
  std::vector<uint64_t> counters;
  // Empty, shaped like `state`: each tensor on the device of the one it stands for.
  explicit ForwardStash(const ForwardState& state);
};

// Swaps the contents of `state` with `stash`: the same call stashes a micro-batch and brings it back.
void trade(const ForwardState& state, ForwardStash& stash);

class Layer {
 public:
  virtual ~Layer() = default;

  // Spec keyword ("linear", "conv", ...) and the canonical spec text that rebuilds this layer.
  virtual std::string kind() const = 0;
  virtual std::string spec() const = 0;

  // Called once with the per-sample input shape (no batch dimension): checks it, allocates and
  // initialises parameters from `rng`, and returns the per-sample output shape.
  virtual Shape build(const Shape& sample_in, Rng& rng) = 0;

  // x: [batch, sample_in...]. The layer may keep a pointer to x until its backward.
  virtual const Tensor& forward(const Tensor& x, Mode mode) = 0;
  // dy: gradient of the loss w.r.t. the last forward output. Adds parameter gradients into Param::grad
  // and returns the gradient w.r.t. the input (empty when input gradients are switched off).
  virtual const Tensor& backward(const Tensor& dy) = 0;

  virtual ForwardState forward_state() = 0;

  virtual std::vector<Param*> params() { return {}; }
  // Non-trained state saved with the model (BatchNorm running statistics).
  virtual std::vector<NamedTensor> buffers() { return {}; }
  // Positions of the layer's random streams (dropout: its training forwards so far), saved in checkpoints
  // so that a resumed run draws the masks an uninterrupted one would.
  virtual std::vector<uint64_t*> random_streams() { return {}; }
  // Forward and backward multiply-adds per sample, for throughput reports and pipeline balancing.
  virtual double flops_per_sample() const { return 0.0; }

  // Takes over an element-wise ReLU that directly follows this layer, as a fused epilogue (oneDNN calls
  // them post-ops): forward clamps the output at 0 and backward zeroes the incoming gradient where the
  // output is 0, while the ReLU layer passes values through. Saves the activation's two passes over
  // memory; results are bitwise the same. Returns false where the layer has no such epilogue.
  virtual bool fold_relu() { return false; }

  // Training statistics over the whole global batch (sync batchnorm): the layer sums its per-batch
  // statistics through `sum` (null: this rank's batch alone). A block passes it on to its parts.
  virtual void share_batch_statistics(CrossReplicaSum* /*sum*/) {}

  // A block of layers (residual) names its parts, "conv1" or "shortcut/conv1", in the order its params(),
  // buffers() and random_streams() list theirs; a plain layer has none.
  virtual std::vector<std::pair<std::string, Layer*>> sublayers() { return {}; }

  // Weight tying (GPT-2's output layer reads the token embedding's table). The layer that owns the shared
  // weight returns it from tied_weight_source() (an embedding: its token table). A layer that borrows one
  // returns the shape it needs from tied_weight_shape() (empty: it borrows none) and takes the owner's Param in
  // tie(); it lists no Param of its own for it (the parameter count stays the published one) and its backward
  // adds into the owner's grad. The owner comes first in the model, so its backward runs later and a layer's
  // gradients are still final when its backward ends. The model links them after building and after moving.
  virtual Param* tied_weight_source() { return nullptr; }
  virtual Shape tied_weight_shape() const { return {}; }
  virtual void tie(Param* /*source*/) {}

  // The first layer's input gradient is never used; skipping it saves a GEMM per step. A block passes the
  // setting on to its own first layers.
  virtual void set_input_grad_needed(bool needed) { input_grad_needed_ = needed; }
  bool input_grad_needed() const { return input_grad_needed_; }

 protected:
  bool input_grad_needed_ = true;
};

}  // namespace ringtrain
