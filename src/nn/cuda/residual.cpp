// The residual block on the GPU: Residual's own forward and backward, over CUDA parts, with its two
// element-wise steps as kernels.
#include "cuda_layers.hpp"

namespace ringtrain::cuda {

CudaResidual::CudaResidual(Residual& source) : Residual(source, make_cuda_layer, Device::cuda) {}

// Residual's tensors were made on the device (its converting constructor), so resizing them allocates there.
void CudaResidual::add(const Tensor& a, const Tensor& b, Tensor& out, bool relu) {
  out.resize(a.shape());
  kernels::add(a.data(), b.data(), out.data(), out.numel(), relu, context().compute());
}

void CudaResidual::relu_gradient(const Tensor& dy, const Tensor& y, Tensor& out) {
  out.resize(dy.shape());
  kernels::relu_mask(dy.data(), y.data(), out.data(), out.numel(), context().compute());
}

}  // namespace ringtrain::cuda
