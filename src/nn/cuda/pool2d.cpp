#include "cuda_layers.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain::cuda {

CudaPool2d::CudaPool2d(Pool2d& source) : CudaLayer(source), kernel_(source.kernel()), stride_(source.stride()) {
  const int k = static_cast<int>(source.kernel()), s = static_cast<int>(source.stride());
  check(cudnnSetPooling2dDescriptor(pool_desc_,
                                    source.pool_kind() == PoolKind::max ? CUDNN_POOLING_MAX_DETERMINISTIC
                                                                        : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING,
                                    CUDNN_NOT_PROPAGATE_NAN, k, k, 0, 0, s, s),
        "cudnnSetPooling2dDescriptor");
}

void CudaPool2d::describe_input(const Tensor& x) {
  const int64_t n = x.dim(0);
  if (n == batch_ && x.dim(1) == c_ && x.dim(2) == h_ && x.dim(3) == w_) return;
  c_ = x.dim(1), h_ = x.dim(2), w_ = x.dim(3);
  oh_ = (h_ - kernel_) / stride_ + 1;
  ow_ = (w_ - kernel_) / stride_ + 1;
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

}  // namespace ringtrain::cuda
