// The GPT block on the GPU: TransformerBlock's own forward and backward, over CUDA parts, with its residual
// sums as a kernel.
#include "cuda_layers.hpp"

namespace ringtrain::cuda {

CudaTransformerBlock::CudaTransformerBlock(TransformerBlock& source)
    : TransformerBlock(source, make_cuda_layer, Device::cuda) {}

// The block's tensors were made on the device (its converting constructor), so resizing them allocates there.
void CudaTransformerBlock::add(const Tensor& a, const Tensor& b, Tensor& out) {
  out.resize(a.shape());
  kernels::add(a.data(), b.data(), out.data(), out.numel(), false, context().compute());
}

}  // namespace ringtrain::cuda
