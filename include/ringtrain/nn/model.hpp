// A Sequential model: layers applied in order, built from a spec for a given per-sample input shape.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

// Layers [begin, end) of a model: a pipeline stage's share.
struct LayerRange {
  size_t begin = 0, end = 0;
  size_t size() const { return end - begin; }
  bool operator==(const LayerRange&) const = default;
};

struct NamedParam {
  std::string name;  // "<layer>/<param>", e.g. "conv2/weight": layer = kind + ordinal among that kind
  Param* param;
};
std::vector<Param*> params_of(const std::vector<NamedParam>& named);

// Told when each layer starts and ends a pass. Data parallel hands a layer's gradients to the communicator
// the moment its backward ends (overlapping the backward of the layers before it); the timeline records spans.
class LayerObserver {
 public:
  virtual ~LayerObserver() = default;
  virtual void forward_begin(size_t /*layer*/, Mode /*mode*/) {}
  virtual void forward_end(size_t /*layer*/, Mode /*mode*/) {}
  virtual void backward_begin(size_t /*layer*/) {}
  virtual void backward_end(size_t /*layer*/) {}  // the layer's Param::grad are final for this batch
};

class Model {
 public:
  // spec: a preset name or a layer list (see model_spec.hpp). outputs: the data's classes or targets, which
  // the last layer must produce. Throws Error("bad model spec ...") for anything that does not fit.
  Model(const std::string& spec, const Shape& sample_in, int64_t outputs, uint64_t seed);

  // Moves the model to `device`: on CUDA every layer is replaced by its CUDA twin, which takes over its
  // parameters and buffers. Parameter and buffer pointers taken before are invalid afterwards. With a
  // range, only those layers move (a pipeline stage's): the others stay on the host and must not be run.
  void to(Device device);
  void to(Device device, LayerRange layers);
  Device device() const { return device_; }
  LayerRange all_layers() const { return {0, layers_.size()}; }

  // x must be on the model's device. With a range, x is the input of layer `begin` and the result is the
  // output of layer `end - 1`.
  const Tensor& forward(const Tensor& x, Mode mode);
  const Tensor& forward(const Tensor& x, Mode mode, LayerRange layers);
  // dout: gradient of the loss w.r.t. the output; adds into every parameter's gradient. With a range,
  // dout is the gradient w.r.t. layer `end - 1`'s output, and the result that w.r.t. layer `begin`'s input
  // (empty for the first layer, whose input gradient is never needed, and where the range begins at or below
  // first_trained_layer(), where backward stops).
  void backward(const Tensor& dout);
  const Tensor& backward(const Tensor& dout, LayerRange layers);
  void zero_grad();
  void zero_grad(LayerRange layers);

  // Every layer's in the range, in order (Layer::forward_state).
  ForwardState forward_state(LayerRange layers);

  std::vector<Param*> params();
  std::vector<Param*> params(LayerRange layers);
  std::vector<NamedParam> named_params();
  std::vector<NamedParam> named_params(size_t layer);  // one layer's
  std::vector<NamedTensor> named_buffers();  // "<layer>/running_mean", ...
  std::vector<NamedTensor> named_buffers(size_t layer);
  // Layer::random_streams, named "<layer>/stream<k>" ("dropout1/stream0").
  std::vector<std::pair<std::string, uint64_t*>> named_random_streams();
  int64_t parameter_count();

  std::string spec() const;  // canonical, rebuilds the same architecture
  const Shape& input_shape() const { return input_shape_; }
  const Shape& output_shape() const { return output_shape_; }
  // The data's classes or targets the model was built for: a language model ([T] tokens in, [T, V] out)
  // predicts V classes at each of its positions; any other model's outputs are its output values.
  int64_t outputs() const { return per_position_ ? output_shape_.back() : shape_numel(output_shape_); }
  bool per_position() const { return per_position_; }
  // What the loss scores per sample: T positions of a language model, else 1.
  int64_t predictions_per_sample() const { return per_position_ ? output_shape_.front() : 1; }
  // Per-sample input shape of layer i; layer_input_shape(size()) is the output shape.
  const Shape& layer_input_shape(size_t i) const { return layer_shapes_[i]; }
  double flops_per_sample() const;
  size_t size() const { return layers_.size(); }
  Layer& layer(size_t i) { return *layers_[i]; }
  const std::string& layer_name(size_t i) const { return names_[i]; }  // "conv2"

  // Fine-tuning: frozen layers keep their parameters, as Keras' `trainable = False` does. A frozen layer runs
  // as in evaluation whatever the mode (a batchnorm normalises by its running statistics and leaves them as
  // they are; dropout passes values through), and backward starts no lower than the first layer that trains
  // (first_trained_layer), since nothing below it needs a gradient: that layer's input gradient is not
  // computed either. Call once, before moving the model to a device.
  void freeze(const std::vector<size_t>& layers);
  bool frozen(size_t layer) const { return frozen_[layer]; }
  // The first layer with parameters that is not frozen; size() when there is none. 0 in a model without
  // frozen layers (backward then runs through every layer, as before freezing existed).
  size_t first_trained_layer() const { return first_trained_; }
  // The parameters the optimizer updates (those of the layers in the range that are not frozen), and each
  // one's position in params(): where the whole model's OptimizerState keeps its state.
  std::vector<NamedParam> trained_params(LayerRange layers);
  std::vector<size_t> trained_positions(LayerRange layers);

  // Layer::share_batch_statistics for every layer (sync batchnorm); `sum` must outlive its use. While a sum
  // is shared, forward in training mode and backward are collective over the replicas: every replica must
  // run them, in the same order.
  void share_batch_statistics(CrossReplicaSum* sum);

  // Weight tying (Layer::tie): each pair is (borrowing layer, owning layer), e.g. GPT-2's output head and its
  // embedding. Both must run in one place: a pipeline must not cut between them.
  bool has_tied_weights() const { return !tied_.empty(); }
  const std::vector<std::pair<size_t, size_t>>& tied_layers() const { return tied_; }

  // Observers are not owned and must outlive their registration.
  void add_observer(LayerObserver* observer) { observers_.push_back(observer); }
  void remove_observer(LayerObserver* observer);

 private:
  // Finds each layer's tied-weight owner and hands it over (Layer::tie); `quoted` begins an error.
  void link_tied_weights(const std::string& quoted);
  void relink_tied_weights(LayerRange moved);

  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<LayerObserver*> observers_;
  Shape input_shape_, output_shape_;
  bool per_position_ = false;
  std::vector<Shape> layer_shapes_;
  std::vector<std::string> names_;  // each layer's, made once: a spec of thousands of layers asks for them often  // layer i's input; the last is the model's output
  Device device_ = Device::cpu;
  std::vector<bool> frozen_;   // per layer
  size_t first_trained_ = 0;   // backward's lowest layer
  Tensor no_gradient_;         // what backward returns for an input gradient nobody computed
  std::vector<std::pair<size_t, size_t>> tied_;  // (borrower, owner)
};

}  // namespace ringtrain
