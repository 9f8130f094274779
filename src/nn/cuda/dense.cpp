// The GEMMs of a linear map on the GPU (Dense, cuda_layers.hpp).
#include "cuda_layers.hpp"

namespace ringtrain::cuda {

namespace {
__nv_bfloat16* bf16_copy(const float* src, int64_t n, DeviceBuffer& buffer) {
  auto* dst = static_cast<__nv_bfloat16*>(buffer.reserve(sizeof(__nv_bfloat16) * static_cast<size_t>(n)));
  kernels::to_bf16(src, dst, n, context().compute());
  return dst;
}
}  // namespace

void Dense::forward(const float* x, int64_t rows, const Param& weight, const Param* bias, bool relu, float* y) {
  const int64_t out = weight.value.dim(0), in = weight.value.dim(1);
  if (context().precision() == Precision::bf16) {
    const void* x16 = bf16_copy(x, rows * in, x16_);
    const void* w16 = bf16_copy(weight.value.data(), weight.value.numel(), w16_);
    gemm(false, true, rows, out, in, x16, w16, true, y, 0.0f);
  } else {
    gemm(false, true, rows, out, in, x, weight.value.data(), false, y, 0.0f);
  }
  kernels::bias_relu(y, bias ? bias->value.data() : nullptr, rows * out, out, 1, relu, context().compute());
}

void Dense::backward(const float* dy, const float* x, int64_t rows, Param& weight, Param* bias, float* dx) {
  const int64_t out = weight.value.dim(0), in = weight.value.dim(1);
  const bool bf16 = context().precision() == Precision::bf16;
  // bf16: w16_ still holds this step's copy from forward (weights change only in the optimizer step).
  const void* g_op = bf16 ? static_cast<const void*>(bf16_copy(dy, rows * out, dy16_)) : dy;
  const void* x_op = bf16 ? static_cast<const void*>(bf16_copy(x, rows * in, x16_)) : x;
  const void* w_op = bf16 ? w16_.get() : weight.value.data();
  gemm(true, false, out, in, rows, g_op, x_op, bf16, weight.grad.data(), 1.0f);  // dW += dy^T x
  if (bias) {
    // db += dy^T 1: a GEMV reads dy in rows, where a per-column reduction would stride through it.
    if (ones_.numel() < rows) {
      ones_.resize({rows});
      ones_.fill(1.0f);
    }
    const float one = 1.0f;
    check(cublasSgemv(context().cublas(), CUBLAS_OP_N, static_cast<int>(out), static_cast<int>(rows), &one, dy,
                      static_cast<int>(out), ones_.data(), 1, &one, bias->grad.data(), 1),
          "cublasSgemv");
  }
  if (dx) gemm(false, false, rows, in, out, g_op, w_op, bf16, dx, 0.0f);  // dx = dy W
}

}  // namespace ringtrain::cuda
