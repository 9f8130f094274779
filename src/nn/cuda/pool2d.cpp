#include "cuda_layers.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain::cuda {

CudaPool2d::CudaPool2d(Pool2d& source)
    : CudaLayer(source), kernel_(source.kernel()), stride_(source.stride()), pad_(source.pad()) {
  const int k = static_cast<int>(kernel_), s = static_cast<int>(stride_), p = static_cast<int>(pad_);
  // Max: padded positions never win (the CPU pads with -infinity). Average: the divisor is the whole window,
  // padding included, as the CPU's (PyTorch's count_include_pad=True); windows never reach past the padding
  // (the output size below), so that is always k * k.
  check(cudnnSetPooling2dDescriptor(pool_desc_,
                                    source.pool_kind() == PoolKind::max ? CUDNN_POOLING_MAX_DETERMINISTIC
                                                                        : CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING,
                                    CUDNN_NOT_PROPAGATE_NAN, k, k, p, p, s, s),
        "cudnnSetPooling2dDescriptor");
}

void CudaPool2d::describe_input(const Tensor& x) {
  const int64_t n = x.dim(0);
  if (n == batch_ && x.dim(1) == c_ && x.dim(2) == h_ && x.dim(3) == w_) return;
  c_ = x.dim(1), h_ = x.dim(2), w_ = x.dim(3);
  oh_ = (h_ + 2 * pad_ - kernel_) / stride_ + 1;  // Pool2d::build's (and cudnnGetPooling2dForwardOutputDim's)
  ow_ = (w_ + 2 * pad_ - kernel_) / stride_ + 1;
  describe(x_desc_, n, c_, h_, w_);
  describe(y_desc_, n, c_, oh_, ow_);
  batch_ = n;
}

const Tensor& CudaPool2d::forward(const Tensor& x, Mode) {
  if (x.rank() != 4) throw Error(kind() + " expects [batch, channels, height, width] input, got " + shape_str(x.shape()));
  describe_input(x);
  x_ = &x;
  y_.resize({x.dim(0), c_, oh_, ow_});
  const float one = 1.0f, zero = 0.0f;
  check(cudnnPoolingForward(context().cudnn(), pool_desc_, &one, x_desc_, x.data(), &zero, y_desc_, y_.data()),
        "cudnnPoolingForward");
  return y_;
}

const Tensor& CudaPool2d::backward(const Tensor& dy) {
  if (!input_grad_needed_) return dx_;
  describe_input(*x_);  // the forward this follows: a pipeline stage may have run others in between
  dx_.resize(x_->shape());
  const float one = 1.0f, zero = 0.0f;
  check(cudnnPoolingBackward(context().cudnn(), pool_desc_, &one, y_desc_, y_.data(), y_desc_, dy.data(), x_desc_,
                             x_->data(), &zero, x_desc_, dx_.data()),
        "cudnnPoolingBackward");
  return dx_;
}

const Tensor& CudaGlobalAvgPool::forward(const Tensor& x, Mode) {
  if (x.rank() != 4) throw Error(kind() + " expects [batch, channels, height, width] input, got " + shape_str(x.shape()));
  in_shape_ = x.shape();
  y_.resize({x.dim(0), x.dim(1)});
  kernels::plane_mean(x.data(), y_.data(), x.dim(0) * x.dim(1), x.dim(2) * x.dim(3), stream());
  return y_;
}

const Tensor& CudaGlobalAvgPool::backward(const Tensor& dy) {
  if (!input_grad_needed_) return dx_;
  // The batch is dy's: a pipeline stage may have pooled another micro-batch since this one's forward.
  Shape shape = in_shape_;
  shape[0] = dy.dim(0);
  dx_.resize(shape);
  kernels::plane_mean_backward(dy.data(), dx_.data(), dy.numel(), shape[2] * shape[3], stream());
  return dx_;
}

}  // namespace ringtrain::cuda
