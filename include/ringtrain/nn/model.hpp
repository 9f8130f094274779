// A Sequential model: layers applied in order, built from a spec for a given per-sample input shape.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

struct NamedParam {
  std::string name;  // "<layer>/<param>", e.g. "conv2/weight": layer = kind + ordinal among that kind
  Param* param;
};

// Told when each layer starts and ends a pass. Data parallel hands a layer's gradients to the communicator
// the moment its backward ends (overlapping the backward of the layers before it); the timeline records spans.
class LayerObserver {
 public:
  virtual ~LayerObserver() = default;
  virtual void forward_begin(size_t /*layer*/) {}
  virtual void forward_end(size_t /*layer*/) {}
  virtual void backward_begin(size_t /*layer*/) {}
  virtual void backward_end(size_t /*layer*/) {}  // the layer's Param::grad are final for this batch
};

class Model {
 public:
  // spec: a preset name or a layer list (see model_spec.hpp). outputs: the data's classes or targets, which
  // the last layer must produce. Throws Error("bad model spec ...") for anything that does not fit.
  Model(const std::string& spec, const Shape& sample_in, int64_t outputs, uint64_t seed);

  // Moves the model to `device`: on CUDA every layer is replaced by its CUDA twin, which takes over its
  // parameters and buffers. Parameter and buffer pointers taken before are invalid afterwards.
  void to(Device device);
  Device device() const { return device_; }

  // x must be on the model's device.
  const Tensor& forward(const Tensor& x, Mode mode);
  // dout: gradient of the loss w.r.t. the model's output; adds into every parameter's gradient.
  void backward(const Tensor& dout);
  void zero_grad();

  std::vector<Param*> params();
  std::vector<NamedParam> named_params();
  std::vector<NamedParam> named_params(size_t layer);  // one layer's
  std::vector<NamedTensor> named_buffers();  // "<layer>/running_mean", ...
  int64_t parameter_count();

  std::string spec() const;  // canonical, rebuilds the same architecture
  const Shape& input_shape() const { return input_shape_; }
  const Shape& output_shape() const { return output_shape_; }
  double flops_per_sample() const;
  size_t size() const { return layers_.size(); }
  Layer& layer(size_t i) { return *layers_[i]; }
  std::string layer_name(size_t i) const { return layer_names()[i]; }  // "conv2"

  // Observers are not owned and must outlive their registration.
  void add_observer(LayerObserver* observer) { observers_.push_back(observer); }
  void remove_observer(LayerObserver* observer);

 private:
  std::vector<std::string> layer_names() const;

  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<LayerObserver*> observers_;
  Shape input_shape_, output_shape_;
  Device device_ = Device::cpu;
};

}  // namespace ringtrain
