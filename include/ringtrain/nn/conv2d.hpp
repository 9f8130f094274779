// 2-D convolution over [batch, C, H, W] on oneDNN's convolution primitives (direct, or Winograd for large
// 3x3 ones), which measured faster than our own im2col + GEMM on the cnn, resnet20 and ResNet-50 shapes
// (docs/benchmarks.md). Tensors stay NCHW
// (weights OIHW) outside the layer, as every other layer reads them; inside, oneDNN works in the layouts it
// prefers and the layer reorders on the way in and out.
#pragma once
#include <map>
#include <memory>
#include <utility>

#include "ringtrain/nn/layer.hpp"

namespace dnnl {
struct memory;  // dnnl.hpp stays out of ringtrain's public headers
}

namespace ringtrain {

struct ConvGeometry {
  int64_t in_c, in_h, in_w, out_c, kernel, stride, pad, out_h, out_w;
};

class Conv2d : public Layer {
 public:
  Conv2d(int64_t out_channels, int64_t kernel, int64_t stride, int64_t pad, bool bias);
  ~Conv2d() override;
  std::string kind() const override { return "conv"; }
  std::string spec() const override;
  Shape build(const Shape& sample_in, Rng& rng) override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&y_}}; }
  std::vector<Param*> params() override;
  double flops_per_sample() const override;
  bool fold_relu() override;

  const ConvGeometry& geometry() const { return g_; }
  bool has_bias() const { return has_bias_; }
  bool relu_folded() const { return relu_; }

 private:
  struct Plan;  // oneDNN's primitives for one batch size and thread count (conv2d.cpp)
  Plan& plan_for(int64_t batch);
  const float* masked_by_relu(const Tensor& dy);
  void backward_weights(Plan& plan, const dnnl::memory& dy);
  void backward_data(Plan& plan, const dnnl::memory& dy);

  int64_t out_c_, kernel_, stride_, pad_;
  bool has_bias_, relu_ = false;
  ConvGeometry g_{};
  Param weight_{"weight", {}, {}, true}, bias_{"bias", {}, {}};
  const Tensor* x_ = nullptr;
  Tensor y_, dx_;
  // Primitives are made for a batch size and a thread count (oneDNN splits the work when it makes them):
  // pipelines' micro-batches and the last, partial evaluation batch bring other sizes.
  std::map<std::pair<int64_t, int>, std::unique_ptr<Plan>> plans_;
  // Buffers in oneDNN's layouts, shared by all plans: the input (forward and weight gradient; the input
  // gradient after that), the output (forward; the output gradient in the backward), the output gradient
  // again where the two backward primitives want it in different layouts, the weight gradient, and the
  // weights as the forward and the backward-data primitives want them.
  Tensor in_staged_, out_staged_, dy_staged_, dw_staged_, weight_fwd_, weight_bwd_;
  const Plan* weights_converted_by_ = nullptr;  // the plan whose layout weight_fwd_ holds (the last forward's)
  Tensor dy_relu_;     // dy masked by the folded ReLU
  Tensor bias_grad_;   // this batch's bias gradient, added into bias_.grad
  Tensor scratchpad_;  // oneDNN's temporary memory, one for all its primitives
};

}  // namespace ringtrain
