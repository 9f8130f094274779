// A pre-LayerNorm GPT-2 transformer block over [T, C]:
//   h = x + dropout(attention(ln1(x))),  out = h + dropout(proj(gelu(fc(ln2(h)))))
// with fc C -> 4C and proj 4C -> C applied per token, exact (erf) GELU, and the residual dropouts only when
// p > 0. Like Residual, the block is one layer to everything above it (the pipeline cuts between blocks);
// its parts are named ln1, attention, dropout1, ln2, fc, gelu, proj, dropout2, and their parameters travel
// as "block3/attention/qkv_weight", "block3/fc/weight", ...
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ringtrain/nn/layer.hpp"
#include "ringtrain/nn/residual.hpp"

namespace ringtrain {

class TransformerBlock : public Layer {
 public:
  TransformerBlock(int64_t heads, float dropout);

  std::string kind() const override { return "block"; }
  std::string spec() const override;
  Shape build(const Shape& sample_in, Rng& rng) override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override;
  std::vector<Param*> params() override;
  std::vector<uint64_t*> random_streams() override;
  double flops_per_sample() const override;
  std::vector<std::pair<std::string, Layer*>> sublayers() override;
  void set_input_grad_needed(bool needed) override;

  int64_t heads() const { return heads_; }
  float dropout() const { return p_; }

 protected:
  // The CUDA twin: takes over `source`'s built parts, each replaced by convert(part), with its own tensors
  // on `device`. Only the element-wise sum below differs between devices.
  TransformerBlock(TransformerBlock& source, const std::function<std::unique_ptr<Layer>(Layer&)>& convert,
                   Device device);
  // out = a + b.
  virtual void add(const Tensor& a, const Tensor& b, Tensor& out);

 private:

  int64_t heads_;
  float p_;
  LayerStack attention_branch_;  // ln1, attention[, dropout1]
  LayerStack mlp_branch_;        // ln2, fc, gelu, proj[, dropout2]
  Tensor h_, y_, dh_, dx_;       // h_: x + the attention branch, ln2's input
};

}  // namespace ringtrain
