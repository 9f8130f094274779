#include "cuda_layer.hpp"

#include <stdexcept>

#include "cuda_layers.hpp"
#include "ringtrain/tensor/error.hpp"
#include "ringtrain/nn/activation.hpp"
#include "ringtrain/nn/batchnorm.hpp"
#include "ringtrain/nn/conv2d.hpp"
#include "ringtrain/nn/dropout.hpp"
#include "ringtrain/nn/linear.hpp"
#include "ringtrain/nn/pool2d.hpp"
#include "ringtrain/nn/residual.hpp"

namespace ringtrain::cuda {

CudaLayer::CudaLayer(const Layer& source)
    : kind_(source.kind()), spec_(source.spec()), flops_(source.flops_per_sample()) {
  set_input_grad_needed(source.input_grad_needed());
}

Shape CudaLayer::build(const Shape&, Rng&) {
  throw std::logic_error("CUDA layers are made from built CPU layers (Model::to), never built themselves");
}

Param CudaLayer::to_device(const Param& p) {
  return {p.name, p.value.to(Device::cuda), Tensor(p.value.shape(), Device::cuda), p.kernel};
}

std::unique_ptr<Layer> make_cuda_layer(Layer& source) {
  if (auto* l = dynamic_cast<Linear*>(&source)) {
    if (l->per_token()) throw Error("layer 'linear(per_token=1)' has no CUDA version yet");
    return std::make_unique<CudaLinear>(*l);
  }
  if (auto* l = dynamic_cast<Conv2d*>(&source)) return std::make_unique<CudaConv2d>(*l);
  if (auto* l = dynamic_cast<Pool2d*>(&source)) return std::make_unique<CudaPool2d>(*l);
  if (auto* l = dynamic_cast<Activation*>(&source)) return std::make_unique<CudaActivation>(*l);
  if (auto* l = dynamic_cast<Dropout*>(&source)) return std::make_unique<CudaDropout>(*l);
  if (auto* l = dynamic_cast<Flatten*>(&source)) return std::make_unique<CudaFlatten>(*l);
  if (auto* l = dynamic_cast<BatchNorm*>(&source)) return std::make_unique<CudaBatchNorm>(*l);
  if (auto* l = dynamic_cast<GlobalAvgPool*>(&source)) return std::make_unique<CudaGlobalAvgPool>(*l);
  // A block converts its parts with this same function (nested blocks included); the result is a Residual,
  // not a CudaLayer.
  if (auto* l = dynamic_cast<Residual*>(&source)) return std::make_unique<CudaResidual>(*l);
  throw Error("layer '" + source.kind() + "' has no CUDA version yet");
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* a, const void* b, bool bf16,
          float* c, float beta) {
  // cuBLAS is column-major, and a row-major matrix read column-major is its transpose: row-major
  // C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so B goes first and the shapes swap.
  const float alpha = 1.0f;
  const cudaDataType ab = bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cublasComputeType_t compute =
      !bf16 && context().precision() == Precision::tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  check(cublasGemmEx(context().cublas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                     static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha, b, ab,
                     static_cast<int>(trans_b ? k : n), a, ab, static_cast<int>(trans_a ? m : k), &beta, c, CUDA_R_32F,
                     static_cast<int>(n), compute, CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx");
}

void describe(cudnnTensorDescriptor_t d, int64_t n, int64_t c, int64_t h, int64_t w) {
  check(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, static_cast<int>(n), static_cast<int>(c),
                                   static_cast<int>(h), static_cast<int>(w)),
        "cudnnSetTensor4dDescriptor");
}

}  // namespace ringtrain::cuda
