// LayerNorm on the GPU (CudaLayerNorm, cuda_layers.hpp).
#include "cuda_layers.hpp"

namespace ringtrain::cuda {

CudaLayerNorm::CudaLayerNorm(LayerNorm& source)
    : CudaLayer(source),
      eps_(source.eps()),
      channels_(source.channels()),
      weight_(to_device(*source.params()[0])),
      bias_(to_device(*source.params()[1])) {}

const Tensor& CudaLayerNorm::forward(const Tensor& x, Mode) {
  x_ = &x;
  const int64_t rows = x.numel() / channels_;
  y_.resize(x.shape());
  mean_.resize({rows});
  inv_std_.resize({rows});
  kernels::layernorm_forward(x.data(), weight_.value.data(), bias_.value.data(), y_.data(), mean_.data(),
                             inv_std_.data(), rows, channels_, eps_, stream());
  return y_;
}

const Tensor& CudaLayerNorm::backward(const Tensor& dy) {
  const int64_t rows = dy.numel() / channels_;
  if (input_grad_needed_) dx_.resize(dy.shape());
  auto* scratch = static_cast<float*>(
      scratch_.reserve(sizeof(float) * kernels::layernorm_scratch_floats(rows, channels_)));
  kernels::layernorm_backward(x_->data(), dy.data(), weight_.value.data(), mean_.data(), inv_std_.data(),
                              input_grad_needed_ ? dx_.data() : nullptr, weight_.grad.data(), bias_.grad.data(),
                              scratch, rows, channels_, stream());
  return dx_;
}

}  // namespace ringtrain::cuda
