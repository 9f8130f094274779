// The CUDA engine's layers. Each is made from a built CPU layer of the same kind (Model::to): it takes over
// that layer's kind, spec and parameter values, so initialisation, spec parsing and names exist once, and a
// model built with one seed starts from the same weights on either device. The math runs on the process's
// compute stream (cuda_context.hpp); nothing in a step waits for the GPU.
#pragma once
#include <cudnn.h>

#include <memory>
#include <string>

#include "ringtrain/nn/layer.hpp"
#include "ringtrain/tensor/cuda_context.hpp"

namespace ringtrain::cuda {

// A tensor on the GPU from its construction, so that resizing it (as layers do on the first batch)
// allocates device memory. Layers' outputs and scratch are these.
class DeviceTensor : public Tensor {
 public:
  DeviceTensor() : Tensor({0}, Device::cuda) {}
};

class CudaLayer : public Layer {
 public:
  explicit CudaLayer(const Layer& source);
  std::string kind() const override { return kind_; }
  std::string spec() const override { return spec_; }
  Shape build(const Shape& sample_in, Rng& rng) override;  // never: CUDA layers come built
  double flops_per_sample() const override { return flops_; }

 protected:
  static Param to_device(const Param& p);  // value copied to the GPU, gradient zeroed there
  static cudaStream_t stream() { return context().compute(); }

 private:
  std::string kind_, spec_;
  double flops_;
};

// The CUDA twin of a built CPU layer. Throws Error for a kind the CUDA engine lacks.
std::unique_ptr<Layer> make_cuda_layer(Layer& source);

// Row-major C[m, n] = op(A) op(B) + beta * C, op(A) [m, k] and op(B) [k, n]; trans_a means A is stored
// [k, m], trans_b that B is stored [n, k]. A and B are fp32, or bf16 when `bf16` (C is always fp32 and the
// products are summed in fp32). Under --precision tf32, fp32 operands run on tensor cores.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* a, const void* b, bool bf16,
          float* c, float beta);

// One row-major fp32 operand of a batched product: matrix i starts at data + i * stride, and its rows are ld
// floats apart. Attention reads its heads in place this way: head h of q in a [T, 3C] qkv row block is the
// [T, C/H] matrix at offset h * C/H with ld 3C.
struct Strided {
  const float* data;
  int64_t ld, stride;
};

// `batch` row-major products C_i = alpha op(A_i) op(B_i) + beta C_i, with op(A_i) [m, k] and op(B_i) [k, n]
// (trans_a: A_i stored [k, m]; trans_b: B_i stored [n, k]), fp32 in and out, summed in fp32. Under
// --precision tf32 cuBLAS may run them on TF32 tensor cores, under bf16 on bf16 ones (operands rounded to
// bf16 inside cuBLAS: the same math as gemm's bf16 copies, without making them).
void gemm_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, Strided a, Strided b,
                  float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch);

// RAII for cuDNN descriptors.
template <class T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
class Descriptor {
 public:
  Descriptor() { check(Create(&d_), "cudnnCreate descriptor"); }
  ~Descriptor() { Destroy(d_); }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  operator T() const { return d_; }

 private:
  T d_;
};
using TensorDescriptor = Descriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDescriptor = Descriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvolutionDescriptor =
    Descriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor, cudnnDestroyConvolutionDescriptor>;
using PoolingDescriptor = Descriptor<cudnnPoolingDescriptor_t, cudnnCreatePoolingDescriptor, cudnnDestroyPoolingDescriptor>;

// Describes a dense fp32 NCHW tensor.
void describe(cudnnTensorDescriptor_t d, int64_t n, int64_t c, int64_t h, int64_t w);

}  // namespace ringtrain::cuda
