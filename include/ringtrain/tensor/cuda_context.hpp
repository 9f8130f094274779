// The CUDA engine's per-process state: the chosen GPU, its streams and its library handles. Only sources
// built with CUDA include this (layers in src/nn/cuda, the NCCL backend, kernels/); everything else goes
// through device.hpp.
//
// Streams: every layer, loss and optimizer kernel runs on `compute`, in program order, so a step needs no
// host synchronisation. Batches are uploaded on `upload` while the previous step computes, and gradients
// are reduced on `comm` (NCCL) while backward goes on; events order the three (stream_wait), never the host.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>

#include "ringtrain/tensor/device.hpp"

namespace ringtrain::cuda {

// Throw Error("CUDA error in <what>: <the library's message>").
void check(cudaError_t status, const char* what);
void check(cublasStatus_t status, const char* what);
void check(cudnnStatus_t status, const char* what);

class Context {
 public:
  Context(int gpu, Precision precision);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int gpu() const { return gpu_; }
  Precision precision() const { return precision_; }
  void set_precision(Precision precision);
  cudaStream_t compute() const { return compute_; }
  cudaStream_t comm() const { return comm_; }
  cudaStream_t upload() const { return upload_; }
  cublasHandle_t cublas() const { return cublas_; }
  cudnnHandle_t cudnn() const { return cudnn_; }
  // Scratch for cuDNN, grown on demand and shared by every layer (they run one at a time on `compute`).
  void* workspace(size_t bytes);

 private:
  int gpu_;
  Precision precision_;
  cudaStream_t compute_ = nullptr, comm_ = nullptr, upload_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  DeviceBuffer workspace_;
};

// The context made by use_cuda_device(), with its GPU made current on the calling thread; throws Error
// when there is none.
Context& context();

// Makes `waiter` wait, on the device, for everything queued on `producer` so far. The host does not block.
void stream_wait(cudaStream_t waiter, cudaStream_t producer);

// Threads per block for the element-wise kernels, and a grid covering n elements (grid-stride loops take
// the rest).
inline constexpr int kThreads = 256;
inline unsigned blocks_for(long long n) {
  const long long b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 ? 65535 : b));
}

}  // namespace ringtrain::cuda
