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

class Model {
 public:
  // spec: a preset name or a layer list (see model_spec.hpp). outputs: the data's classes or targets, which
  // the last layer must produce. Throws Error("bad model spec ...") for anything that does not fit.
  Model(const std::string& spec, const Shape& sample_in, int64_t outputs, uint64_t seed);

  const Tensor& forward(const Tensor& x, Mode mode);
  // dout: gradient of the loss w.r.t. the model's output; adds into every parameter's gradient.
  void backward(const Tensor& dout);
  void zero_grad();

  std::vector<Param*> params();
  std::vector<NamedParam> named_params();
  std::vector<NamedTensor> named_buffers();  // "<layer>/running_mean", ...
  int64_t parameter_count();

  std::string spec() const;  // canonical, rebuilds the same architecture
  const Shape& input_shape() const { return input_shape_; }
  const Shape& output_shape() const { return output_shape_; }
  double flops_per_sample() const;
  size_t size() const { return layers_.size(); }
  Layer& layer(size_t i) { return *layers_[i]; }

 private:
  std::vector<std::string> layer_names() const;

  std::vector<std::unique_ptr<Layer>> layers_;
  Shape input_shape_, output_shape_;
};

}  // namespace ringtrain
