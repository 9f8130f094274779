// A linear layer on the GPU: Dense over its rows (cuda_layers.hpp).
#include <stdexcept>

#include "cuda_layers.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain::cuda {

CudaLinear::CudaLinear(Linear& source)
    : CudaLayer(source),
      in_(source.in_features()),
      out_(source.out_features()),
      has_bias_(source.has_bias()),
      relu_(source.relu_folded()),
      per_token_(source.per_token()),
      tied_flag_(source.tied()) {
  // A tied weight is not the layer's to copy: Model::to links the embedding twin's table after converting.
  if (!tied_flag_) weight_ = to_device(*source.weight());
  if (has_bias_) bias_ = to_device(*source.params().back());
}

std::vector<Param*> CudaLinear::params() {
  std::vector<Param*> out;
  if (!tied_flag_) out.push_back(&weight_);
  if (has_bias_) out.push_back(&bias_);
  return out;
}

const Tensor& CudaLinear::forward(const Tensor& x, Mode) {
  const int64_t rows = x.numel() / in_;  // samples, or samples x tokens
  const bool fits = per_token_ ? x.rank() >= 2 && x.shape().back() == in_ : x.numel() == x.dim(0) * in_;
  if (!fits) throw Error("linear expects " + std::to_string(in_) + " input features, got " + shape_str(x.shape()));
  if (tied_flag_ && !tied_) throw std::logic_error("a tied linear layer ran before Model linked its weight");
  x_ = &x;
  Shape out_shape{x.dim(0), out_};
  if (per_token_) {
    out_shape = x.shape();
    out_shape.back() = out_;
  }
  y_.resize(out_shape);
  dense_.forward(x.data(), rows, weight(), has_bias_ ? &bias_ : nullptr, relu_, y_.data());
  return y_;
}

const Tensor& CudaLinear::backward(const Tensor& dy) {
  const int64_t rows = dy.numel() / out_;
  const float* g = dy.data();
  if (relu_) {
    dy_relu_.resize(dy.shape());
    kernels::relu_mask(dy.data(), y_.data(), dy_relu_.data(), dy.numel(), stream());
    g = dy_relu_.data();
  }
  if (input_grad_needed_) dx_.resize(x_->shape());
  dense_.backward(g, x_->data(), rows, weight(), has_bias_ ? &bias_ : nullptr,
                  input_grad_needed_ ? dx_.data() : nullptr);
  return dx_;
}

}  // namespace ringtrain::cuda
