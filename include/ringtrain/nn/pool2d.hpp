// Max and average pooling over [batch, C, H, W], kernel k, stride s (default k) and padding p (at most k/2),
// output size floor((H + 2p - k) / s) + 1 as in PyTorch. Max pooling pads with -infinity (a padded position
// never wins); average pooling counts the zero padding in its divisor (PyTorch's count_include_pad=True).
// GlobalAvgPool averages each channel's whole plane: [batch, C, H, W] -> [batch, C], ResNet's head.
#pragma once
#include <cstdint>
#include <vector>

#include "ringtrain/nn/layer.hpp"

namespace ringtrain {

enum class PoolKind { max, avg };

class Pool2d : public Layer {
 public:
  Pool2d(PoolKind kind, int64_t kernel, int64_t stride, int64_t pad = 0)
      : pool_(kind), kernel_(kernel), stride_(stride), pad_(pad) {}
  std::string kind() const override { return pool_ == PoolKind::max ? "maxpool" : "avgpool"; }
  std::string spec() const override;
  Shape build(const Shape& sample_in, Rng& rng) override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&y_}, {&argmax_}}; }

  PoolKind pool_kind() const { return pool_; }
  int64_t kernel() const { return kernel_; }
  int64_t stride() const { return stride_; }
  int64_t pad() const { return pad_; }

 private:
  PoolKind pool_;
  int64_t kernel_, stride_, pad_;
  int64_t c_ = 0, h_ = 0, w_ = 0, oh_ = 0, ow_ = 0;
  const Tensor* x_ = nullptr;
  Tensor y_, dx_;
  std::vector<int32_t> argmax_;  // max pooling: input offset within the sample's channel plane
};

class GlobalAvgPool : public Layer {
 public:
  std::string kind() const override { return "globalavgpool"; }
  std::string spec() const override { return kind(); }
  Shape build(const Shape& sample_in, Rng& rng) override;
  const Tensor& forward(const Tensor& x, Mode mode) override;
  const Tensor& backward(const Tensor& dy) override;
  ForwardState forward_state() override { return {{&y_}}; }

 private:
  Shape sample_in_;
  int64_t c_ = 0, plane_ = 0;
  Tensor y_, dx_;
};

}  // namespace ringtrain
