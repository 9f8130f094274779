#include "cuda_layers.hpp"
#include "ringtrain/tensor/error.hpp"

namespace ringtrain::cuda {

namespace {
__nv_bfloat16* bf16_copy(const float* src, int64_t n, DeviceBuffer& buffer) {
  auto* dst = static_cast<__nv_bfloat16*>(buffer.reserve(sizeof(__nv_bfloat16) * static_cast<size_t>(n)));
  kernels::to_bf16(src, dst, n, context().compute());
  return dst;
}
}  // namespace

CudaLinear::CudaLinear(Linear& source)
    : CudaLayer(source),
      in_(source.in_features()),
      out_(source.out_features()),
      has_bias_(source.has_bias()),
      relu_(source.relu_folded()) {
  const std::vector<Param*> p = source.params();
  weight_ = to_device(*p[0]);
  if (has_bias_) bias_ = to_device(*p[1]);
}

std::vector<Param*> CudaLinear::params() {
  if (has_bias_) return {&weight_, &bias_};
  return {&weight_};
}

const Tensor& CudaLinear::forward(const Tensor& x, Mode) {
  const int64_t n = x.dim(0);
  if (x.numel() != n * in_)
    throw Error("linear expects " + std::to_string(in_) + " input features, got " + shape_str(x.shape()));
  x_ = &x;
  y_.resize({n, out_});
  if (context().precision() == Precision::bf16) {
    const void* x16 = bf16_copy(x.data(), x.numel(), x16_);
    const void* w16 = bf16_copy(weight_.value.data(), weight_.value.numel(), w16_);
    gemm(false, true, n, out_, in_, x16, w16, true, y_.data(), 0.0f);
  } else {
    gemm(false, true, n, out_, in_, x.data(), weight_.value.data(), false, y_.data(), 0.0f);
  }
  kernels::bias_relu(y_.data(), has_bias_ ? bias_.value.data() : nullptr, y_.numel(), out_, 1, relu_, stream());
  return y_;
}

const Tensor& CudaLinear::backward(const Tensor& dy) {
  const int64_t n = dy.dim(0);
  const float* g = dy.data();
  if (relu_) {
    dy_relu_.resize(dy.shape());
    kernels::relu_mask(dy.data(), y_.data(), dy_relu_.data(), dy.numel(), stream());
    g = dy_relu_.data();
  }
  const bool bf16 = context().precision() == Precision::bf16;
  // bf16: w16_ still holds this step's copy from forward (weights change only in the optimizer step).
  const void* g_op = bf16 ? static_cast<const void*>(bf16_copy(g, dy.numel(), dy16_)) : g;
  const void* x_op = bf16 ? static_cast<const void*>(bf16_copy(x_->data(), x_->numel(), x16_)) : x_->data();
  const void* w_op = bf16 ? w16_.get() : weight_.value.data();
  gemm(true, false, out_, in_, n, g_op, x_op, bf16, weight_.grad.data(), 1.0f);  // dW += dy^T x
  if (has_bias_) {
    // db += dy^T 1: a GEMV reads dy in rows, where a per-column reduction would stride through it.
    if (ones_.numel() < n) {
      ones_.resize({n});
      ones_.fill(1.0f);
    }
    const float one = 1.0f;
    check(cublasSgemv(context().cublas(), CUBLAS_OP_N, static_cast<int>(out_), static_cast<int>(n), &one, g,
                      static_cast<int>(out_), ones_.data(), 1, &one, bias_.grad.data(), 1),
          "cublasSgemv");
  }
  if (!input_grad_needed_) return dx_;
  dx_.resize(x_->shape());
  gemm(false, false, n, in_, out_, g_op, w_op, bf16, dx_.data(), 0.0f);  // dx = dy W
  return dx_;
}

}  // namespace ringtrain::cuda
