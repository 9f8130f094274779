// The CUDA activation, dropout and flatten layers: one kernel (or one copy) each way.
#include "cuda_layers.hpp"

namespace ringtrain::cuda {

namespace {

kernels::Activation kernel_kind(ActivationKind kind) {
  switch (kind) {
    case ActivationKind::relu: return kernels::Activation::relu;
    case ActivationKind::tanh: return kernels::Activation::tanh;
    case ActivationKind::sigmoid: return kernels::Activation::sigmoid;
    case ActivationKind::leaky_relu: return kernels::Activation::leaky_relu;
    case ActivationKind::elu: return kernels::Activation::elu;
    case ActivationKind::gelu: return kernels::Activation::gelu;
  }
  return kernels::Activation::relu;
}

}  // namespace

CudaActivation::CudaActivation(Activation& source)
    : CudaLayer(source), kind_(kernel_kind(source.activation())), param_(source.param()), folded_(source.folded()) {}

const Tensor& CudaActivation::forward(const Tensor& x, Mode) {
  if (folded_) return x;
  y_.resize(x.shape());
  if (kind_ == kernels::Activation::gelu) {  // its derivative needs the input
    x_.resize(x.shape());
    x_.copy_from(x);
  }
  kernels::activation_forward(kind_, param_, x.data(), y_.data(), x.numel(), stream());
  return y_;
}

const Tensor& CudaActivation::backward(const Tensor& dy) {
  if (folded_) return dy;
  if (!input_grad_needed_) return dx_;
  dx_.resize(dy.shape());
  const float* saved = kind_ == kernels::Activation::gelu ? x_.data() : y_.data();
  kernels::activation_backward(kind_, param_, saved, dy.data(), dx_.data(), dy.numel(), stream());
  return dx_;
}

CudaDropout::CudaDropout(Dropout& source)
    : CudaLayer(source), p_(source.p()), seed_(source.seed()), calls_(source.calls()) {}

const Tensor& CudaDropout::forward(const Tensor& x, Mode mode) {
  last_mode_ = mode;
  y_.resize(x.shape());
  if (mode == Mode::eval || p_ == 0.0f) {
    y_.copy_from(x);
    return y_;
  }
  forward_call_ = calls_++;
  kernels::dropout(x.data(), y_.data(), x.numel(), p_, seed_, forward_call_, stream());
  return y_;
}

const Tensor& CudaDropout::backward(const Tensor& dy) {
  if (!input_grad_needed_) return dx_;
  dx_.resize(dy.shape());
  if (last_mode_ == Mode::eval || p_ == 0.0f)
    dx_.copy_from(dy);
  else
    kernels::dropout(dy.data(), dx_.data(), dy.numel(), p_, seed_, forward_call_, stream());  // the forward's mask
  return dx_;
}

const Tensor& CudaFlatten::forward(const Tensor& x, Mode) {
  in_shape_ = x.shape();
  y_.copy_from(x);
  y_.reshape({x.dim(0), x.numel() / x.dim(0)});
  return y_;
}

const Tensor& CudaFlatten::backward(const Tensor& dy) {
  if (!input_grad_needed_) return dx_;
  // The batch is dy's: a pipeline stage may have flattened another micro-batch since this one's forward.
  Shape shape = in_shape_;
  shape[0] = dy.dim(0);
  dx_.copy_from(dy);
  dx_.reshape(shape);
  return dx_;
}

}  // namespace ringtrain::cuda
